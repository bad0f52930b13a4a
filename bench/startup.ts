/**
 * Embedded-default start-up: process start → `nexus ready`, and idle RSS one second later.
 * Targets (DEVELOPERS.md): ready ≤ 300 ms, idle RSS ≤ 70 MB. Run: `node bench/startup.ts [runs]`
 * (with NEXUS_FROM_SOURCE=1: from the TypeScript instead of the bundle that `npm ci` compiles).
 * The first run after install fills Node's compile cache and is reported separately.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './lib/services.ts';

const runs = Number(process.argv[2] ?? 7);
const bin = join(import.meta.dirname, '..', 'apps', 'broker', 'bin', 'nexus.js');

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
  let out = '';
  const readyMs = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not ready within 10 s')), 10_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /"ready_ms":(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  await new Promise((r) => setTimeout(r, 1000));
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { readyMs, rssMb: Math.round(Number(rss?.[1] ?? 0) / 1024) };
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
  console.log(
    `targets: ready <= 300 ms ${median(ready) <= 300 ? 'MET' : 'NOT MET'}; idle RSS <= 70 MB ${median(rss) <= 70 ? 'MET' : 'NOT MET'}`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
