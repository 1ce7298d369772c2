/**
 * The firewall part of npm run bench:firewall: in each mode, smtpguard runs that load 0, 1k, 10k,
 * 100k blocks and apply 1% changes, ufw reload, and what an innocent client pays (connect
 * latency, the CPU of a SYN burst) against a control port.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Addresses, BIN, fmt, list, log, median, percentile, RUNS, seconds, sh, SIZES } from './common.js';
import { table } from './results.js';
import { BenchStack, CONTROL_PORT, INNOCENT, MX4, type Mode } from './stack.js';

/** Connects per latency sample set; SYNs per burst, and the longest a burst may take (seconds). */
const CONNECTS = 2000;
const BURST = 20_000;
const BURST_SECONDS = 10;

interface FirewallRow {
  mode: Mode;
  blocks: number;
  change: string;
  /** The run that brought the list to this size from the previous one. */
  load: number;
  /** Of that run: the firewall step, and the `ss -K` commands (one per 64 new blocks). */
  loadFirewall: number;
  loadSs: number;
  /** How many blocks that run added. */
  loadAdded: number;
  e2e: number;
  firewallStep: number;
  postmap: number;
  postfixReload: number;
  ss: number;
  own: number;
  ufwReload: number;
  restoreTest: number;
  setSwap: number;
  /** nftables: `smtpguard load-firewall` with the table gone, as the boot unit runs it (whole process). */
  bootLoad: number;
  latencyMedian: number;
  latencyP99: number;
  /** The same, at the control port (not through the smtpguard chain), measured in turn. */
  controlMedian: number;
  controlP99: number;
  burstSent: number;
  burstWalked: number;
  burstWallPerK: number;
  burstCpuPerK: number;
  controlWallPerK: number;
  controlCpuPerK: number;
  /** Machine-wide system+irq+softirq from /proc/stat (other work on the machine included). */
  machinePerK: number;
  controlMachinePerK: number;
  blockedDropped: string;
}

function measureMode(mode: Mode, sizes: readonly number[]): FirewallRow[] {
  const stack = new BenchStack(mode);
  const rows: FirewallRow[] = [];
  try {
    log(`${mode}: setting up the namespaces, ufw, Postfix and smtpguard install --firewall ${mode}`);
    stack.up();
    const addresses = new Addresses(14);
    let current: string[] = [];
    const apply = (desired: readonly string[], what: string) => {
      writeFileSync(stack.desired, JSON.stringify(desired));
      stack.takeTimes();
      const t0 = process.hrtime.bigint();
      const r = stack.smtpguard(['run', ...stack.runFlags()]);
      const wall = seconds(t0);
      const times = stack.takeTimes();
      if (r.code !== 0 || /warning|error/i.test(r.stderr)) throw new Error(`smtpguard run (${what}) exited ${r.code}: ${r.stderr}${r.stdout.slice(0, 1000)}`);
      const inKernel = stack.kernelBlocks();
      if (inKernel !== desired.length) throw new Error(`after ${what}: the kernel has ${inKernel} blocks, expected ${desired.length}; run said: ${r.stdout.slice(0, 300)}`);
      return { wall, times, stdout: r.stdout };
    };
    for (const n of sizes) {
      // to this size: keep what is there, add or drop the difference
      const target = current.length <= n ? [...current, ...Array.from({ length: n - current.length }, () => addresses.take())] : addresses.pick(current, n);
      log(`${mode}: ${n} blocks: the run that loads them (from ${current.length})`);
      const before = new Set(current);
      const loadAdded = target.filter((c) => !before.has(c)).length;
      const load = apply(target, `loading ${n} blocks`);
      current = target;
      log(`${mode}: ${n} blocks: loaded in ${load.wall.toFixed(2)} s (${load.stdout.trim().slice(0, 100)})`);

      // a 1% change: 0.5% out, 0.5% in (at 0 blocks: one block in, then out)
      const k = Math.max(1, Math.round(n * 0.005));
      const e2e: number[] = [];
      const parts: Record<string, number[]> = { firewall: [], postmap: [], postfix: [], ss: [], own: [] };
      for (let i = 0; i < RUNS; i++) {
        let desired: string[];
        if (n === 0) desired = current.length === 0 ? [addresses.take()] : [];
        else {
          const out = new Set(addresses.pick(current, k));
          desired = [...current.filter((c) => !out.has(c)), ...Array.from({ length: k }, () => addresses.take())];
        }
        const change = apply(desired, `a 1% change at ${n}`);
        current = desired;
        e2e.push(change.wall);
        const t = change.times;
        const firewall = stepOf(mode, t);
        parts.firewall!.push(firewall);
        parts.postmap!.push(t.postmap ?? 0);
        parts.postfix!.push(t.postfix ?? 0);
        parts.ss!.push(t.ss ?? 0);
        parts.own!.push(change.wall - Object.values(t).reduce((a, b) => a + b, 0));
      }
      if (n === 0 && current.length > 0) {
        apply([], 'back to 0 blocks');
        current = [];
      }
      log(`${mode}: ${n} blocks: 1% change median ${median(e2e).toFixed(2)} s (firewall step ${median(parts.firewall!).toFixed(2)} s)`);

      // the firewall alone: ufw reload (both modes: boot and every admin's reload pay it), iptables-restore --test of what is loaded
      const reloads: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = process.hrtime.bigint();
        const r = stack.fwRun(['ufw', 'reload']);
        reloads.push(seconds(t0));
        if (r.code !== 0) throw new Error(`ufw reload failed: ${r.stderr}${r.stdout}`);
      }
      if (stack.kernelBlocks() !== current.length) throw new Error(`after ufw reload the kernel has ${stack.kernelBlocks()} blocks, expected ${current.length}`);
      const saved = stack.mustMx(['iptables-save']);
      const tests: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = process.hrtime.bigint();
        stack.mustMx(['iptables-restore', '--test'], saved);
        tests.push(seconds(t0));
      }
      // set mode: one restore of all members into a temporary set and the swap, as a run does it, timed directly
      const swaps: number[] = [];
      if (mode === 'ipset') {
        const header = /Header: (.*)/.exec(stack.mustMx(['ipset', '-t', 'list', 'smtpguard4']))?.[1] ?? 'family inet';
        const script = [`create sgbench4-new hash:net ${header.replace(/\s*(references|memsize|bucketsize|initval)\b.*$/, '')}`, ...current.map((c) => `add sgbench4-new ${c}`), ''].join('\n');
        writeFileSync(path.join(stack.dir, 'swap.restore'), script);
        for (let i = 0; i < RUNS; i++) {
          const t0 = process.hrtime.bigint();
          stack.mustMx(['sh', '-ec', `ipset restore -file ${sh(path.join(stack.dir, 'swap.restore'))}; ipset swap sgbench4-new smtpguard4; ipset destroy sgbench4-new`]);
          swaps.push(seconds(t0));
        }
        if (stack.kernelBlocks() !== current.length) throw new Error('the direct swap changed the set');
      }

      // nftables: a boot, as its unit does it: the table gone, then smtpguard load-firewall (node's start included)
      const boots: number[] = [];
      if (mode === 'nftables') {
        for (let i = 0; i < RUNS; i++) {
          stack.mustMx(['nft', 'delete', 'table', 'inet', 'smtpguard']);
          const t0 = process.hrtime.bigint();
          const r = stack.smtpguard(['load-firewall', ...stack.flags()]);
          boots.push(seconds(t0));
          if (r.code !== 0) throw new Error(`load-firewall failed: ${r.stderr}`);
          if (stack.kernelBlocks() !== current.length) throw new Error(`after load-firewall the kernel has ${stack.kernelBlocks()} blocks, expected ${current.length}`);
        }
        stack.takeTimes();
      }

      // is it a working firewall: a blocked address gets no answer, and the DROP rule counts it
      const blocked = current[0]?.replace(/\/32$/, '');
      let blockedDropped = 'n/a (no block)';
      if (blocked !== undefined) {
        stack.clientAddress(blocked, true);
        try {
          const before = stack.counters().dropped;
          const probe = stack.runClient(['probe', MX4, blocked, '2']);
          const after = stack.counters().dropped;
          blockedDropped = probe === 'timeout' && after > before ? `yes (${blocked}: timeout, DROP +${after - before})` : `NO: ${probe}, DROP +${after - before}`;
        } finally {
          stack.clientAddress(blocked, false);
        }
      }

      // the innocent client: connect latency, and the CPU a SYN burst costs; port 25 and the control port in turn
      const lat = { smtp: { med: [] as number[], p99: [] as number[] }, control: { med: [] as number[], p99: [] as number[] } };
      const burstOf = { smtp: { wall: [] as number[], cpu: [] as number[], machine: [] as number[] }, control: { wall: [] as number[], cpu: [] as number[], machine: [] as number[] } };
      let sent = 0;
      let walked = 0;
      for (let i = 0; i < RUNS; i++) {
        stack.mustMx(['conntrack', '-F']);
        const [smtp = '', control = ''] = stack.runClient(['latency', MX4, INNOCENT, String(CONNECTS), '25', String(CONTROL_PORT)]).split('\n');
        for (const [which, line] of [['smtp', smtp], ['control', control]] as const) {
          const samples = line.split(' ').map(Number);
          lat[which].med.push(median(samples));
          lat[which].p99.push(percentile(samples, 99));
        }
        for (const which of ['smtp', 'control'] as const) {
          stack.mustMx(['conntrack', '-F']);
          const c0 = stack.counters().walked;
          const port = which === 'smtp' ? '25' : String(CONTROL_PORT);
          const burst = JSON.parse(stack.runClient(['burst', MX4, INNOCENT, String(BURST), String(BURST_SECONDS), port])) as { sent: number; wall: number; jiffies: Record<string, number>; hz: number; selfSystem: number; selfUser: number };
          const c1 = stack.counters().walked;
          const j = burst.jiffies;
          const cpu = ((j.system ?? 0) + (j.irq ?? 0) + (j.softirq ?? 0)) / burst.hz;
          if (which === 'smtp') {
            sent = burst.sent;
            walked = c1 - c0;
          }
          burstOf[which].wall.push((burst.wall / burst.sent) * 1e6);
          burstOf[which].cpu.push(((burst.selfSystem + burst.selfUser) / burst.sent) * 1e6);
          burstOf[which].machine.push((cpu / burst.sent) * 1e6);
        }
      }
      stack.mustMx(['conntrack', '-F']);
      const row: FirewallRow = {
        mode,
        blocks: n,
        change: n === 0 ? '+1 / -1' : `-${k} +${k}`,
        load: load.wall,
        loadFirewall: stepOf(mode, load.times),
        loadSs: load.times.ss ?? 0,
        loadAdded,
        e2e: median(e2e),
        firewallStep: median(parts.firewall!),
        postmap: median(parts.postmap!),
        postfixReload: median(parts.postfix!),
        ss: median(parts.ss!),
        own: median(parts.own!),
        ufwReload: median(reloads),
        restoreTest: median(tests),
        setSwap: swaps.length > 0 ? median(swaps) : NaN,
        bootLoad: boots.length > 0 ? median(boots) : NaN,
        latencyMedian: median(lat.smtp.med),
        latencyP99: median(lat.smtp.p99),
        controlMedian: median(lat.control.med),
        controlP99: median(lat.control.p99),
        burstSent: sent,
        burstWalked: walked,
        burstWallPerK: median(burstOf.smtp.wall),
        burstCpuPerK: median(burstOf.smtp.cpu),
        controlWallPerK: median(burstOf.control.wall),
        controlCpuPerK: median(burstOf.control.cpu),
        machinePerK: median(burstOf.smtp.machine),
        controlMachinePerK: median(burstOf.control.machine),
        blockedDropped,
      };
      rows.push(row);
      log(`${mode}: ${n} blocks: ufw reload ${row.ufwReload.toFixed(2)} s, connect median ${row.latencyMedian.toFixed(0)} us (control ${row.controlMedian.toFixed(0)}) p99 ${row.latencyP99.toFixed(0)} us, burst ${row.burstCpuPerK.toFixed(1)} ms CPU / 1000 SYNs (control ${row.controlCpuPerK.toFixed(1)}); blocked: ${blockedDropped}`);
    }
  } finally {
    stack.down();
  }
  return rows;
}

/** Seconds of the firewall's own commands in one run, as the wrappers timed them. */
function stepOf(mode: Mode, times: Record<string, number>): number {
  return (mode === 'rules' ? times.ufw : mode === 'ipset' ? times.ipset : times.nft) ?? 0;
}

function firewallTables(rows: readonly FirewallRow[]): string {
  const applyHeader = ['mode', 'blocks', 'change', 'smtpguard run, end to end (s)', 'firewall step (s)', 'postmap (s)', 'postfix reload (s)', 'ss -K (s)', 'smtpguard itself (s)', 'ufw reload alone (s)', 'iptables-restore --test (s)', 'set restore + swap alone (s)', 'load at boot: smtpguard load-firewall (s)', 'run that loaded the list: blocks added, s (firewall step, ss -K)'];
  const apply = rows.map((r) => [r.mode, String(r.blocks), r.change, fmt(r.e2e, 2), fmt(r.firewallStep, 2), fmt(r.postmap, 2), fmt(r.postfixReload, 2), fmt(r.ss, 2), fmt(r.own, 2), fmt(r.ufwReload, 2), fmt(r.restoreTest, 2), r.mode === 'ipset' ? fmt(r.setSwap, 2) : '', r.mode === 'nftables' ? fmt(r.bootLoad, 2) : '', `+${r.loadAdded}: ${fmt(r.load, 2)} (${fmt(r.loadFirewall, 2)}, ${fmt(r.loadSs, 2)})`]);
  const base = (r: FirewallRow) => rows.find((b) => b.mode === r.mode && b.blocks === 0);
  const ratio = (x: number, y: number | undefined) => (y === undefined || !Number.isFinite(y) || y === 0 ? '' : `${(x / y).toFixed(2)}x`);
  const clientHeader = ['mode', 'blocks', 'connect median (µs): port 25 / control', 'p99 (µs): port 25 / control', 'port 25 median: vs 0 blocks / vs control', 'p99: vs 0 blocks / vs control', 'SYNs sent / walked the chain', 'burst wall (ms per 1000 SYNs): 25 / control', 'CPU of the sender (ms per 1000 SYNs): 25 / control', 'sender CPU: vs 0 blocks / vs control', 'machine sys+irq+softirq (ms per 1000 SYNs): 25 / control', 'a blocked address is dropped'];
  const client = rows.map((r) => [
    r.mode, String(r.blocks),
    `${fmt(r.latencyMedian, 0)} / ${fmt(r.controlMedian, 0)}`, `${fmt(r.latencyP99, 0)} / ${fmt(r.controlP99, 0)}`,
    `${ratio(r.latencyMedian, base(r)?.latencyMedian)} / ${ratio(r.latencyMedian, r.controlMedian)}`, `${ratio(r.latencyP99, base(r)?.latencyP99)} / ${ratio(r.latencyP99, r.controlP99)}`,
    `${r.burstSent} / ${r.burstWalked}`, `${fmt(r.burstWallPerK, 1)} / ${fmt(r.controlWallPerK, 1)}`, `${fmt(r.burstCpuPerK, 1)} / ${fmt(r.controlCpuPerK, 1)}`,
    `${ratio(r.burstCpuPerK, base(r)?.burstCpuPerK)} / ${ratio(r.burstCpuPerK, r.controlCpuPerK)}`, `${fmt(r.machinePerK, 1)} / ${fmt(r.controlMachinePerK, 1)}`, r.blockedDropped,
  ]);
  return `${table(applyHeader, apply)}\n\n${table(clientHeader, client)}`;
}

/** What the firewall numbers say, computed from them (so that the text cannot drift from the table). */
function firewallReadings(rows: readonly FirewallRow[]): string {
  const out: string[] = [];
  const biggest = (mode: Mode) => rows.filter((r) => r.mode === mode && r.blocks > 0).sort((a, b) => b.blocks - a.blocks)[0];
  const rules = biggest('rules');
  if (rules !== undefined) {
    const perRuleConnect = ((rules.latencyMedian - rules.controlMedian) / rules.blocks) * 1000; // ns
    const perRuleCpu = ((rules.burstCpuPerK - rules.controlCpuPerK) / rules.blocks) * 1000; // ns of CPU per SYN per rule
    const tenPercent = (0.1 * rules.controlMedian * 1000) / perRuleConnect;
    const tenPercentCpu = (0.1 * rules.controlCpuPerK * 1000) / perRuleCpu;
    out.push(
      `- Rules mode: each rule costs every new SMTP connection about ${perRuleConnect.toFixed(1)} ns of connect latency and ${perRuleCpu.toFixed(1)} ns of CPU ` +
        `(from ${rules.blocks} rules against the control port). So ${Math.round(tenPercent / 100) * 100} rules add 10% to an innocent client's connect time ` +
        `(${rules.controlMedian.toFixed(0)} µs here), and ${Math.round(tenPercentCpu / 100) * 100} rules 10% to the CPU a new connection costs; ` +
        `at ${rules.blocks} blocks a connect takes ${(rules.latencyMedian / rules.controlMedian).toFixed(1)}x as long and a SYN burst ${(rules.burstCpuPerK / rules.controlCpuPerK).toFixed(1)}x the CPU. ` +
        `A change reloads ufw: ${fmt(rules.firewallStep, 1)} s at ${rules.blocks} blocks.`,
    );
  }
  /** A set backend at its biggest size: latency against 0 blocks and the control, a 1% change against its target. */
  const setReading = (mode: Mode, name: string, step: string, target: number): string | null => {
    const row = biggest(mode);
    if (row === undefined) return null;
    const base = rows.find((r) => r.mode === mode && r.blocks === 0);
    const vsZero = base === undefined ? NaN : row.latencyMedian / base.latencyMedian;
    const vsControl = row.latencyMedian / row.controlMedian;
    return (
      `- ${name} at ${row.blocks} blocks: connect latency ${fmt(vsZero, 2)}x that at 0 blocks and ${fmt(vsControl, 2)}x the control port measured in turn ` +
      `(target: within 10% of 0 blocks: ${vsControl <= 1.1 ? 'met, against the control' : 'NOT met'}${Number.isFinite(vsZero) && vsZero > 1.1 && vsControl <= 1.1 ? '; the run-to-run noise of a shared machine is larger than 10%' : ''}). ` +
      `A 1% change took ${fmt(row.e2e, 2)} s end to end (target <= ${target} s: ${row.e2e <= target ? 'met' : 'NOT met'}), of which ${step} ${fmt(row.firewallStep, 2)} s and smtpguard itself ${fmt(row.own, 2)} s.` +
      (mode === 'nftables' ? ` The load at boot (the table gone, \`smtpguard load-firewall\` as the unit runs it, node's start included) took ${fmt(row.bootLoad, 2)} s (target <= 2 s: ${row.bootLoad <= 2 ? 'met' : 'NOT met'}).` : '')
    );
  };
  for (const reading of [setReading('ipset', 'Set mode', 'the ipset commands', 2), setReading('nftables', 'nftables', 'the nft commands', 1)]) if (reading !== null) out.push(reading);
  const dropped = rows.filter((r) => r.blocks > 0);
  if (dropped.length > 0) out.push(`- Blocked addresses were dropped in ${dropped.filter((r) => r.blockedDropped.startsWith('yes')).length} of ${dropped.length} measured states.`);
  return out.join('\n');
}

export function supportedModes(): Mode[] {
  const wanted = list('BENCH_MODES', 'rules,ipset,nftables') as Mode[];
  const help = spawnSync(process.execPath, [BIN, 'run', '--help'], { encoding: 'utf8' }).stdout;
  return wanted.filter((m) => {
    if (m === 'rules' || help.includes('--firewall')) return true;
    log(`mode ${m}: this smtpguard has no --firewall flag; not measured`);
    return false;
  });
}

/** The part's text: what was measured and how, the tables, what they say. */
export function firewallPart(): string {
  const sizes = SIZES.join(', ');
  const rows: FirewallRow[] = [];
  for (const mode of supportedModes()) rows.push(...measureMode(mode, SIZES));
  return `### Applying a 1% change, and what an innocent client pays

Blocks: ${sizes} IPv4 hosts (random in 10.0.0.0/8), pulled as fleet decisions from a stand-in CrowdSec Local API in MX;
each \`smtpguard run\` (\`--window all --max-blocks 0 --map-type hash\`, cut sessions on) pulls the delta and applies it. A 1%
change takes 0.5% of the blocks out and puts as many new ones in (at 0 blocks: one block in, then out). Medians of ${RUNS}
changes. "firewall step" is the time of the \`ufw\` (rules), all \`ipset\` (set mode) or \`nft\` (nftables) commands inside that run, "smtpguard
itself" the rest (node, the pull, deciding, rendering, writing files); both from wrappers that time each command smtpguard
runs. "ufw reload alone" is a plain \`ufw reload\` with the blocks loaded (what boot and every admin's reload pay; in set mode
it restores nothing: the sets exist). "set restore + swap alone": \`ipset restore\` of all members into a new set, \`ipset swap\`,
\`ipset destroy\`. "iptables-restore --test": of the whole \`iptables-save\` output.

${firewallTables(rows)}

${firewallReadings(rows)}

Innocent client: ${CONNECTS} sequential TCP connects (SO_LINGER 0) from ${INNOCENT} in CLIENT to a plain listener on MX:25,
after 50 unmeasured, conntrack flushed first; median of ${RUNS} runs of the median and of the p99. The control is the same
listener on port ${CONTROL_PORT}, also allowed by ufw but not one of the ports that jump to the smtpguard chain, measured in
turn with port 25 (connect to 25, connect to ${CONTROL_PORT}, ...): its ratio cancels most of the noise of a shared machine,
which the "vs 0 blocks" ratios (measured minutes apart) do not. SYN burst: up to ${BURST} raw SYNs from the same address,
distinct source ports (each a new connection: to port 25 each walks the smtpguard chain, "walked" is the packet counter of
the jump), stopped after ${BURST_SECONDS} s; then the same to the control port. The veth delivers in the sender's context,
so MX's firewall work (and the SYN/ACK and the client's RST) runs as the sending process's system time: "CPU of the sender"
is its user+system time (getrusage; the kernel books softirq ticks to the task it interrupts), per 1000 SYNs, which other
work on the machine does not disturb; "machine" is the /proc/stat delta of system+irq+softirq over all CPUs, which it does.
A blocked address: one connect with a 2 s timeout from an address of the list, and the DROP rule's counter (SYN and its retransmission).
`;
}
