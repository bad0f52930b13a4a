/**
 * The SDK testbed: everything an SDK's test suite talks to, started for real on loopback.
 *
 * - a real OpenID provider (oidc-provider, the broker's own test fixture);
 * - a real broker: `nexus serve --no-worker` as a child process on a temporary SQLite file, with one
 *   provider per strategy type, one active connection per strategy (OAuth through the provider's
 *   consent pages, the others through hosted capture), an agent allowed to use them, a trusted issuer
 *   for on-behalf-of sessions and one user secret;
 * - an upstream API (upstream.ts) that checks the credential each strategy must have applied;
 * - long-lived servers that check it on connect and while the connection lasts: WebSocket
 *   (ws-server.ts) and gRPC (grpc-server.ts);
 * - a control API for the tests (new connections, revoked grants, expired tokens, dropped
 *   connections, broker down and up, counters).
 *
 * Run: `node sdks/testbed/testbed.ts`. When ready it prints one JSON line on stdout (see README.md);
 * it stops on SIGTERM, SIGINT or when its standard input closes. Logs go to stderr.
 */
import { log, Testbed } from './bed.ts';
import { loadTestbedConfig } from './config.ts';

const testbed = new Testbed(loadTestbedConfig().inherited);
let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  await testbed.close().catch((error: Error) => log(`close: ${error.message}`));
  process.exit(code);
}
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
process.stdin.on('end', () => void stop(0));
process.stdin.on('error', () => void stop(0));
process.stdin.resume();
testbed.start().then(
  (info) => process.stdout.write(`${JSON.stringify(info)}\n`),
  (error: Error) => {
    log(`failed to start: ${error.stack ?? error.message}`);
    void stop(1);
  },
);
