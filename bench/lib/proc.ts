/**
 * What a bench reads from Linux's /proc: CPU time and resident memory of a process, the CPU of
 * every PostgreSQL process, and the machine's busy time. A process that has exited reads as 0.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Milliseconds per clock tick (USER_HZ is 100 on Linux). */
export const TICK_MS = 10;

/** utime + stime of a process (or, with `children`, of its reaped children), in clock ticks. */
export function procTicks(pid: number | string, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const at = children ? 13 : 11;
    return Number(fields[at]) + Number(fields[at + 1]);
  } catch {
    return 0;
  }
}

/** Resident set size (VmRSS) of a process in MB (MiB), or NaN when it is gone. */
export function rssMb(pid: number | string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** CPU ticks of every process named `postgres` (the server and all its backends), by pid. */
export function postgresTicksByPid(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') ticks.set(pid, procTicks(pid));
    } catch {}
  }
  return ticks;
}

/** CPU ticks of every process named `postgres`, summed. */
export function postgresTicks(): number {
  let sum = 0;
  for (const ticks of postgresTicksByPid().values()) sum += ticks;
  return sum;
}

/**
 * PostgreSQL ticks spent between two `postgresTicksByPid()` snapshots. Backends come and go: one
 * that started since counts from zero, one that ended since loses only its last stretch (a plain
 * difference of sums would lose all of its time and can go negative).
 */
export function postgresTicksBetween(before: Map<string, number>, after: Map<string, number>): number {
  let sum = 0;
  for (const [pid, ticks] of after) sum += Math.max(0, ticks - (before.get(pid) ?? 0));
  return sum;
}

/** The machine's busy ticks (all CPUs: everything but idle and iowait), from /proc/stat. */
export function machineBusyTicks(): number {
  const all = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return all.slice(0, 8).reduce((a, b) => a + b, 0) - all[3]! - all[4]!;
}

/** utime + stime of a process and every live process below it (`serve --workers`), in ticks. */
export function treeTicks(root: number | string): number {
  const children = new Map<string, string[]>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!;
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {}
  }
  let sum = 0;
  const queue = [String(root)];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    sum += procTicks(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return sum;
}
