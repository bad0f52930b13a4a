/**
 * The testbed's configuration layer: the one place that reads the environment, once. The testbed
 * needs nothing of it but what its broker child inherits (PATH to find node, HOME for npm's cache);
 * everything else it starts is configured by the testbed itself.
 */
export interface TestbedConfig {
  /** Passed on to the broker child process. */
  readonly inherited: { readonly PATH?: string | undefined; readonly HOME?: string | undefined };
}

export function loadTestbedConfig(): TestbedConfig {
  return { inherited: { PATH: process.env.PATH, HOME: process.env.HOME } };
}
