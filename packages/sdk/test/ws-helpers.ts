/**
 * What the maintainWebSocket suites share: a handler that records what it is told, a running loop
 * whose end can be awaited, labels for the testbed's per-label counters, and polling.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  type MaintainWebSocketOptions,
  maintainWebSocket,
  NexusClient,
  type SendFunction,
  type WebSocketHandler,
} from '../src/index.ts';
import type { StrategyName, Testbed, WsLabelStats } from './testbed.ts';

/** A fast reconnect policy, as the Go suite's. */
export const FAST = { minBackoffMs: 100, maxBackoffMs: 1000, resetAfterMs: 60_000 };

export function agentClient(tb: Testbed): NexusClient {
  return new NexusClient({
    baseUrl: tb.info.broker_url,
    clientId: tb.info.agent.client_id,
    clientSecret: tb.info.agent.client_secret,
    env: {},
  });
}

/** A name of the test's own for the servers' counters. */
export const label = (name: string) =>
  `ts-${name.replace(/[^a-z0-9]+/gi, '-')}-${randomBytes(4).toString('hex')}`;

export const wsEndpoint = (tb: Testbed, strategy: StrategyName, lbl: string) =>
  `${tb.info.ws_url}/${strategy}/${lbl}`;

export async function wsStats(tb: Testbed, lbl: string): Promise<WsLabelStats> {
  const s = (await tb.stats()).ws[lbl];
  assert.ok(s, `the server saw nothing of ${lbl}`);
  return s;
}

/** Polls `cond` every 20 ms until it holds, or fails after `ms`. */
export async function eventually(what: string, ms: number, cond: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A handler that keeps what it was told. */
export class Recorder implements WebSocketHandler {
  connects = 0;
  disconnects: unknown[] = [];
  messages: (string | Uint8Array)[] = [];
  #send: SendFunction | undefined;

  onConnect(send: SendFunction) {
    this.connects += 1;
    this.#send = send;
  }
  onMessage(message: string | Uint8Array) {
    this.messages.push(message);
  }
  onDisconnect(error: unknown) {
    this.disconnects.push(error);
  }

  /** The send of the latest connection. */
  send(message: string | Uint8Array): Promise<void> {
    assert.ok(this.#send, 'never connected');
    return this.#send(message);
  }

  /** How many welcomes the server sent: one per connection it opened. */
  welcomes(): number {
    return this.messages.filter((m) => typeof m === 'string' && m.startsWith('{"type":"welcome"')).length;
  }

  lastDisconnect(): unknown {
    return this.disconnects.at(-1);
  }

  /** Sends `text` and waits for the server's echo. */
  async echo(text: string) {
    await this.send(text);
    await eventually(`the echo of ${text.slice(0, 40)}`, 10_000, () => this.messages.includes(text));
  }
}

const running = new Set<AbortController>();

/** Aborts every loop still running (a failed test must not keep the process alive). */
export function abortAll() {
  for (const controller of running) controller.abort();
  running.clear();
}

/** A running loop: `end` settles with what the loop rejected with (it never resolves). */
export function maintain(
  tb: Testbed,
  connectionId: string,
  url: string,
  handler: WebSocketHandler,
  options: MaintainWebSocketOptions = {},
  client: NexusClient = agentClient(tb),
) {
  const controller = new AbortController();
  running.add(controller);
  let isRunning = true;
  const end = maintainWebSocket({ client, connectionId }, url, handler, {
    signal: controller.signal,
    ...options,
  }).then(
    () => assert.fail('maintainWebSocket resolved'),
    (error: unknown) => {
      isRunning = false;
      running.delete(controller);
      return error;
    },
  );
  return {
    abort: () => controller.abort(),
    end,
    get running() {
      return isRunning;
    },
    /** What the loop ended with, failing after `ms`. */
    async wait(ms = 15_000): Promise<unknown> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the loop still ran after ${ms} ms`)), ms);
      });
      try {
        return await Promise.race([end, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export const isAbort = (e: unknown) => e instanceof Error && e.name === 'AbortError';
