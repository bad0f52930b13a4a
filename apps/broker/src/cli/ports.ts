import { createServer } from 'node:net';
import { CliExit } from './context.ts';

/** A port `nexus serve` is about to listen on, with the variable that sets it. */
export interface WantedPort {
  readonly variable: string;
  readonly hostVariable: string;
  readonly host: string;
  readonly port: number;
}

const tryBind = (host: string, port: number) =>
  new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });

/**
 * Binds each port once and lets it go, before `nexus serve` migrates the database or prints a new
 * admin key: a port that is taken should stop the start while it has changed nothing. Another
 * process can still take the port in between; the real listen then fails as before.
 */
export async function ensurePortsFree(wanted: readonly WantedPort[]): Promise<void> {
  const problems: string[] = [];
  for (const { variable, hostVariable, host, port } of wanted) {
    // Port 0 asks the system for any free port: nothing to check.
    if (port === 0) continue;
    const error = await tryBind(host, port);
    if (error === undefined) continue;
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    if (error.code === 'EADDRINUSE')
      problems.push(
        `${variable}=${port}: ${address} is already in use (another nexus, or another program); stop it or set ${variable} to a free port`,
      );
    else if (error.code === 'EACCES')
      problems.push(`${variable}=${port}: not allowed to listen on ${address}; use a port above 1023`);
    else if (error.code === 'EADDRNOTAVAIL')
      problems.push(
        `${hostVariable}=${host}: ${address} is not an address of this machine; set ${hostVariable}`,
      );
    else problems.push(`${variable}=${port}: cannot listen on ${address} (${error.code ?? error.message})`);
  }
  if (problems.length > 0) throw new CliExit(`nexus serve: cannot start: ${problems.join('; ')}`, 1);
}
