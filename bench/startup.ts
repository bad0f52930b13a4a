/**
 * Embedded-default start-up: process start → `nexus ready`, and idle RSS one second later.
 * Targets (DEVELOPERS.md): ready ≤ 300 ms, idle RSS ≤ 70 MB. Run: `node bench/startup.ts [runs]`
 * (with NEXUS_FROM_SOURCE=1: from the TypeScript instead of the bundle that `npm ci` compiles).
 * The first run after install fills Node's compile cache and is reported separately.
 * The same run measures a Fastify hello (bench/lib/hello.ts) on the same Node the same way, the
 * ceiling the broker's figures compare with: machines here differ, and so does what Node itself costs.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { freePort } from './lib/services.ts';

const runs = Number(process.argv[2] ?? 7);
const bin = join(import.meta.dirname, '..', 'apps', 'broker', 'bin', 'nexus.js');

/**
 * Waits until `ready` finds the ready time in what `child` printed, lets it idle one second, reads
 * its RSS and stops it.
 */
async function measure(
  child: ChildProcessByStdio<null, Readable, null>,
  ready: (printed: string) => number | undefined,
): Promise<{ readyMs: number; rssMb: number }> {
  let out = '';
  const readyMs = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not ready within 10 s')), 10_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      const ms = ready(out);
      if (ms !== undefined) {
        clearTimeout(timer);
        resolve(ms);
      }
    });
  });
  await new Promise((r) => setTimeout(r, 1000));
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { readyMs, rssMb: Math.round(Number(rss?.[1] ?? 0) / 1024) };
}

async function once(dataDir: string, cacheDir: string): Promise<{ readyMs: number; rssMb: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, 'serve'], {
    env: {
      PATH: process.env.PATH,
      NEXUS_DATA_DIR: dataDir,
      PORT: String(port),
      NODE_COMPILE_CACHE: cacheDir,
      // NEXUS_FROM_SOURCE=1 measures the start from the TypeScript instead of the bundle.
      ...(process.env.NEXUS_FROM_SOURCE === undefined
        ? {}
        : { NEXUS_FROM_SOURCE: process.env.NEXUS_FROM_SOURCE }),
    },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // The broker's own clock: process start to ready.
  return measure(child, (printed) => {
    const match = /"ready_ms":(\d+)/.exec(printed);
    return match ? Number(match[1]) : undefined;
  });
}

/** The Fastify hello: process start → listening (measured from here), and idle RSS one second later. */
async function hello(): Promise<{ readyMs: number; rssMb: number }> {
  const port = await freePort();
  const started = performance.now();
  // bench/lib/hello.ts in plain JavaScript: a TypeScript entry would load Node's type stripper
  // (~15 MB of WebAssembly) into the ceiling.
  const source = `const app = require('fastify')({ logger: false });
    app.get('/', async () => ({ hello: 'world' }));
    app.listen({ port: ${port}, host: '127.0.0.1' }).then(() => process.stdout.write('listening\\n'));`;
  const child = spawn(process.execPath, ['-e', source], {
    cwd: join(import.meta.dirname, '..'),
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return measure(child, (printed) =>
    printed.includes('listening') ? Math.round(performance.now() - started) : undefined,
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dataDir = mkdtempSync(join(tmpdir(), 'nexus-bench-'));
const cacheDir = join(dataDir, 'compile-cache');
try {
  const first = await once(dataDir, cacheDir);
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await once(dataDir, cacheDir));
  const ready = results.map((r) => r.readyMs);
  const rss = results.map((r) => r.rssMb);
  console.log(
    `first start (cold compile cache, generates keys, migrates): ready ${first.readyMs} ms, idle RSS ${first.rssMb} MB`,
  );
  console.log(
    `warm starts (${runs}): ready median ${median(ready)} ms (min ${Math.min(...ready)}, max ${Math.max(...ready)}); idle RSS median ${median(rss)} MB`,
  );
  const hellos = [];
  for (let i = 0; i < Math.min(runs, 3); i++) hellos.push(await hello());
  const helloRss = median(hellos.map((h) => h.rssMb));
  console.log(
    `Fastify hello, same run (${hellos.length}): start -> listening median ${median(hellos.map((h) => h.readyMs))} ms; idle RSS median ${helloRss} MB; broker/hello RSS ${(median(rss) / helloRss).toFixed(2)}x`,
  );
  console.log(
    `targets: ready <= 300 ms ${median(ready) <= 300 ? 'MET' : 'NOT MET'}; idle RSS <= 70 MB ${median(rss) <= 70 ? 'MET' : 'NOT MET'}`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
