/**
 * Ports for child processes (brokers, PostgreSQL, fixtures) that a test starts and must name
 * before they listen. Shared by every suite in the repository, so it imports nothing but Node.
 */
import { createServer } from 'node:net';

/** Ports this process has handed out, so that it never hands one out twice. */
const handedOut = new Set<number>();

/**
 * A TCP port that was free a moment ago, for a child process to listen on. It is picked at random
 * below the kernel's ephemeral range (32768–60999 here), not by listening on port 0: a port from
 * that range can be taken between the probe and the child's listen by any outgoing connection or
 * any other test's listen(0), and was (a broker that failed to start with EADDRINUSE in CI).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port found in 20000–31999 after 50 tries');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolveFree(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveFree(true)));
  });
}

/** Starts `server` (node:http or node:net) on a free loopback port; its base URL. */
export function listenOnLoopback(server: {
  listen: (port: number, host: string, done: () => void) => void;
  address: () => unknown;
}): Promise<string> {
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () =>
      done(`http://127.0.0.1:${(server.address() as { port: number }).port}`),
    ),
  );
}
