/**
 * Runs wrk (Debian package `wrk`; `scripts/services.sh ensure-wrk` installs it) and reads its
 * report, with where the machine's CPU went during the run, per request: the server under test,
 * PostgreSQL (all its processes), wrk itself, and the rest (kernel work not charged to a process,
 * and any other process: a large figure there means the run was disturbed).
 */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  machineBusyTicks,
  postgresTicksBetween,
  postgresTicksByPid,
  procTicks,
  TICK_MS,
  treeTicks,
} from './proc.ts';
import { freePort } from './services.ts';

export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: string;
  /** CPU microseconds per request. */
  cpu: { server: number; pg: number; wrk: number; other: number };
}

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

export function wrk(options: {
  url: string;
  serverPid: number;
  clients: number;
  seconds: number;
  headers?: readonly string[];
  /** A wrk Lua script (for example one cycling through paths). */
  script?: string | undefined;
}): WrkResult {
  const args = [
    '-t2',
    `-c${options.clients}`,
    `-d${options.seconds}s`,
    '--latency',
    ...(options.script === undefined ? [] : ['-s', options.script]),
    ...(options.headers ?? []).flatMap((h) => ['-H', h]),
    options.url,
  ];
  const snapshot = () => ({
    // The server and its children (the workers of `serve --workers`).
    server: treeTicks(options.serverPid),
    pg: postgresTicksByPid(),
    // wrk has exited and been waited for when the phase ends: it counts in our children's time.
    wrk: procTicks('self', true),
    busy: machineBusyTicks(),
  });
  const before = snapshot();
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const after = snapshot();
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const perRequest = (ticks: number) => (ticks * TICK_MS * 1000) / requests;
  const server = perRequest(after.server - before.server);
  const pg = perRequest(postgresTicksBetween(before.pg, after.pg));
  const wrkCpu = perRequest(after.wrk - before.wrk);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1];
  const socket = /Socket errors:[^\n]+/.exec(out)?.[0];
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    cpu: { server, pg, wrk: wrkCpu, other: perRequest(after.busy - before.busy) - server - pg - wrkCpu },
    errors: [non2xx ? `${non2xx} non-2xx` : '', socket ?? ''].filter(Boolean).join('; ') || 'none',
  };
}

export const formatWrk = (r: WrkResult) =>
  `${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors: ${r.errors}\n` +
  `                         CPU per request: server ${r.cpu.server.toFixed(0)} µs, postgres ${r.cpu.pg.toFixed(0)} µs, wrk ${r.cpu.wrk.toFixed(0)} µs, other (kernel, other processes) ${r.cpu.other.toFixed(0)} µs`;

/** Starts the Fastify hello (hello.ts) on a free port; `stop` ends it. */
export async function startHello(): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const server = await startListening(join(import.meta.dirname, 'hello.ts'), [String(port)]);
  return { url: `http://127.0.0.1:${port}/`, ...server };
}

/** Starts `node FILE ...args` and resolves once it prints `listening`. */
export async function startListening(
  file: string,
  args: string[],
): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${file} exited (${code})`)));
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('listening')) resolve();
    });
  });
  return {
    pid: child.pid!,
    stop: async () => {
      child.removeAllListeners('exit');
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
