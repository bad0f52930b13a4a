/**
 * A private `redis-server` for tests that stop, hang or restart it (the shared test Redis must not
 * be touched): on a given port, bound to loopback, nothing persisted.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

/** Starts redis-server on `port` with `dir` as its working directory; resolves once it accepts connections. */
export async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}):\n${out}`));
    });
  });
  child.removeAllListeners('exit');
  child.stdout!.resume();
  return child;
}

/** Stops it (SIGKILL by default: a crash) and waits for the exit. */
export function stopRedis(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** How many clients are connected to the Redis on `port`, not counting the one that asks. */
export async function redisClients(port: number): Promise<number> {
  const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(port), 'CLIENT', 'LIST']);
  return stdout.split('\n').filter((line) => line.startsWith('id=') && !line.includes('cmd=client|list'))
    .length;
}
