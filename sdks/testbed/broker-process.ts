import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

const NEXUS_BIN = join(resolve(import.meta.dirname, '../..'), 'apps/broker/bin/nexus.js');

/** `nexus serve` as a child process; stop() and start() keep the port and the database. */
export class BrokerProcess {
  private child: ChildProcess | undefined;
  starts = 0;
  private readonly env: Record<string, string>;
  readonly url: string;
  constructor(env: Record<string, string>, url: string) {
    this.env = env;
    this.url = url;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) return;
    const child = spawn(process.execPath, [NEXUS_BIN, 'serve', '--no-worker'], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.starts += 1;
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    let exited: string | undefined;
    child.once('exit', (code) => {
      exited = `broker exited with ${code}`;
      if (this.child === child) this.child = undefined;
    });
    child.stdout?.resume();
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`${exited} before it was ready (its stderr is above)`);
      if (Date.now() > deadline) throw new Error('broker not ready in 20 s');
      const ok = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1_000) }).then(
        (res) => res.ok,
        () => false,
      );
      if (ok) return;
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    });
  }
}
