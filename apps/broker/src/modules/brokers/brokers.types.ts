/**
 * What the process registry tells the rest of the broker, apart from its store: a process as it
 * last reported itself, when it counts as live, and the one read other modules need (`live`).
 * brokers.store.ts implements `LiveBrokers`; `keys/` (rewrap guard, doctor's key report) and
 * `/ready` depend on this interface, never on the store.
 */

/** A running broker process as it last reported itself. */
export interface BrokerProcess {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** `all`, `gateway` or `broker` (`nexus serve --role`), or `worker` (`nexus worker`). */
  readonly role: string;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  /** Key ids of its rings, primary first; `userSecrets` is empty when it has no such ring. */
  readonly rings: Rings;
  /** `env`, `file` or `transit`. */
  readonly keySource: string;
}

/** The key ids of a process's two rings, each primary first. */
export interface Rings {
  readonly encryption: readonly string[];
  readonly userSecrets: readonly string[];
}

/**
 * A process whose last heartbeat is older than this is taken as gone (killed, or its host lost):
 * four heartbeats missed. Hosts' clocks must agree to within a few seconds, as tokens already need.
 */
export const LIVE_MS = 20_000;

/** The registry's read for everyone else: who is running now. */
export interface LiveBrokers {
  /** Processes that sent a heartbeat in the last `LIVE_MS` before `now`, oldest first. */
  live(now: number): Promise<BrokerProcess[]>;
}
