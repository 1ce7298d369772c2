/**
 * npm run bench:firewall (as root): issue 14's measurements. smtpguard's firewall at 0, 1k,
 * 10k and 100k blocks in each firewall mode (`--firewall rules`: one ufw rule per block;
 * `--firewall ipset`: members of hash:net sets; `--firewall nftables`: elements of its own table), and Postfix's access maps (hash, lmdb, cidr)
 * at 1k, 10k and 100k entries. Writes the section "Firewall and maps at scale" of
 * bench/results.md (only that section: the rest of the file is bench/run.ts's) and prints it.
 *
 * The stack: network namespaces MX and CLIENT joined by a veth pair; ufw enabled inside MX on a
 * private copy of /etc/ufw (bind-mounted in a private mount namespace), port 25 allowed; a
 * plain TCP listener on MX:25 (accept, close); a private Postfix instance in MX (port 2525
 * only), because a run's map change ends in `postfix reload`; smtpguard installed with the real
 * CLI, every path in a temp directory. The blocks come from a stand-in CrowdSec Local API
 * (a 30-line HTTP server in MX that answers GET /v1/decisions/stream) as fleet decisions: of
 * smtpguard's block sources only that one is linear today (manual blocks and ban memory are
 * quadratic, measured in the last table: `smtpguard run` would take hours at 100k that way).
 *
 * The parts: the stack (stack.ts: the system tests' Stack, test/system/stack.ts, and what only
 * the bench needs; its helper programs lapi.cjs, listener.py and client.py run from this folder);
 * the measurements and their text (measure-firewall.ts, measure-maps.ts, measure-sources.ts);
 * the section of results.md (results.ts); knobs and helpers (common.ts).
 *
 * Safety (test/system/stack.ts): every ufw, iptables, ipset and conntrack command runs
 * through nsRun(), which refuses this machine's own network namespace; smtpguard and ufw run in
 * `unshare -m` with the private ufw tree bind-mounted; nothing writes the host's /etc/ufw,
 * /etc/postfix, /etc/smtpguard, /etc/cron.d, man or completion directories. Namespaces,
 * processes (by PID) and the temp directory go in a finally, also after a failure.
 *
 * Knobs: BENCH_RUNS (3: medians of), BENCH_SIZES (0,1000,10000,100000), BENCH_MODES
 * (rules,ipset,nftables), BENCH_MAP_SIZES (1000,10000,100000), BENCH_SOURCES=0 skips the block-source
 * table (about 2.5 minutes), BENCH_PART=firewall|maps|sources|follow runs one part only (the other
 * parts of the section are kept from the last run).
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { interrupt, MAP_SIZES, PART, RUNS, seconds, SIZES } from './common.js';
import { firewallPart, supportedModes } from './measure-firewall.js';
import { mapsPart } from './measure-maps.js';
import { sourcesPart } from './measure-sources.js';
import { followPart } from './measure-follow.js';
import { previousParts, writeSection } from './results.js';

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: it makes network namespaces and runs ufw inside them');
  for (const command of ['ip', 'unshare', 'ufw', 'iptables', 'iptables-save', 'iptables-restore', 'ipset', 'nft', 'conntrack', 'postfix', 'postmap', 'ss', '/usr/bin/time']) {
    if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) throw new Error(`${command} is missing`);
  }
  const started = process.hrtime.bigint();
  const parts = previousParts();
  /** Runs one part and stamps it: when, how long, the load around it, the knobs it used. */
  const stamped = (knobs: string, measure: () => string): string => {
    const t0 = process.hrtime.bigint();
    const load0 = loadavg()[0]!;
    const body = measure();
    const stamp = `_Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC in ${(seconds(t0) / 60).toFixed(1)} min (${knobs}); load average ${load0.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after: other work on the machine shows in these numbers._`;
    return body.replace(/\n\n/, `\n\n${stamp}\n\n`);
  };

  if (PART === 'all' || PART === 'firewall') {
    parts.firewall = stamped(`BENCH_RUNS=${RUNS}, BENCH_SIZES=${SIZES.join(',')}, modes ${supportedModes().join(', ')}`, firewallPart);
  }
  if (PART === 'all' || PART === 'maps') {
    parts.maps = stamped(`BENCH_RUNS=${RUNS}, BENCH_MAP_SIZES=${MAP_SIZES.join(',')}`, mapsPart);
  }
  if (PART === 'all' || PART === 'follow') {
    parts.follow = stamped(`BENCH_ATTACKERS=${process.env.BENCH_ATTACKERS ?? 50}, BENCH_SPREAD=${process.env.BENCH_SPREAD ?? 60}, BENCH_IDLE=${process.env.BENCH_IDLE ?? 60}`, followPart);
  }
  if ((PART === 'all' && process.env.BENCH_SOURCES !== '0') || PART === 'sources') {
    parts.sources = stamped('one run each', sourcesPart);
  }
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory, Linux ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}, Node ${process.version}, ${spawnSync('sh', ['-c', 'iptables --version; ufw --version | head -1; ipset --version; postconf -d mail_version'], { encoding: 'utf8' }).stdout.trim().split('\n').join(', ')}`;
  const took = seconds(started);
  const meta = `Machine: ${machine}.
Command: \`sudo npm run bench:firewall\` (as root; BENCH_RUNS, BENCH_SIZES, BENCH_MODES, BENCH_MAP_SIZES, BENCH_SOURCES=0 and
BENCH_PART=firewall|maps|sources|follow are described in bench/firewall/main.ts; each part below says what it ran with). The last run
${PART === 'all' ? 'made every part' : `made the ${PART} part`} in ${(took / 60).toFixed(1)} minutes.`;
  const section = writeSection(parts, meta);
  console.log(section);
}

// Ctrl-C reaches the commands under way too (one process group): they fail, the step that ran them throws, and the
// finally blocks take the namespaces, processes and temp directories down; node must not die before that.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupt();
    console.error(`\n${signal}: stopping after the command under way; cleaning up`);
  });
}

await main();
