/**
 * A client that keeps connecting from one address while smtpguard changes the firewall: every
 * connection it gets answered from a blocked address is a moment the firewall let it through.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BIN, MX4, type Run, type Stack } from './stack.js';

export interface Prober {
  started: () => Promise<void>;
  stop: () => Promise<{ tries: number; answered: number }>;
}

/**
 * From `from` in CLIENT, a new TCP connection to the MX's port 25 every 10 ms until stop()
 * (each waits up to 0.5 s): resolves with the attempts and how many were answered. From a
 * blocked address every answered one is a moment the firewall let it through.
 */
export function startProber(stack: Stack, from: string): Prober {
  const script = `
import os, select, socket, sys, time
mx, src, stop = sys.argv[1], sys.argv[2], sys.argv[3]
pending, tries, answered = [], 0, 0
print("started", flush=True)
while not os.path.exists(stop) or pending:
    now = time.time()
    if not os.path.exists(stop):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect((mx, 25))
        except BlockingIOError:
            pass
        pending.append((now, s))
        tries += 1
    _, writable, _ = select.select([], [s for _, s in pending], [], 0.01)
    for t, s in list(pending):
        if s in writable or now - t > 0.5:
            if s in writable and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                answered += 1
            s.close()
            pending.remove((t, s))
print(tries, answered, flush=True)
`;
  const stopFile = path.join(stack.dir, `stop-prober-${Date.now()}`);
  const child = spawn('ip', ['netns', 'exec', stack.client, 'python3', '-c', script, MX4, from, stopFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    started: async () => {
      for (let waited = 0; !out.includes('started') && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    },
    stop: async () => {
      stack.nsRun(stack.client, ['touch', stopFile]);
      await exited;
      const [tries, answered] = out.trim().split('\n').at(-1)!.split(' ').map(Number);
      return { tries: tries!, answered: answered! };
    },
  };
}

/** Runs `smtpguard run ARGS` in the background while the prober watches; the run's result and what the prober saw. */
export async function runWatched(stack: Stack, watch: Prober, args: string[]): Promise<{ run: Run; probe: { tries: number; answered: number } }> {
  await watch.started();
  await new Promise((r) => setTimeout(r, 300)); // attempts before the switch too
  const run = await new Promise<Run>((resolve) => {
    const child = spawn('ip', stack.fwArgv([process.execPath, BIN, 'run', ...args], { PATH: process.env.PATH ?? '', TZ: 'UTC' }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  await new Promise((r) => setTimeout(r, 300));
  return { run, probe: await watch.stop() };
}

