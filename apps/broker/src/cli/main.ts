import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { VERSION } from '../version.ts';
import { adminKeysCommand } from './commands/admin-keys.ts';
import { auditVerify } from './commands/audit.ts';
import { doctor } from './commands/doctor.ts';
import { importCommand } from './commands/import.ts';
import {
  keysGenerate,
  keysGenerateTransit,
  keysRewrap,
  keysRotate,
  keysRotateSigning,
  keysTransitRewrap,
} from './commands/keys.ts';
import { mcpCommand } from './commands/mcp.ts';
import { migrateCommand } from './commands/migrate.ts';
import { proxyCommand } from './commands/proxy.ts';
import { secretsMigrate } from './commands/secrets.ts';
import { serve, worker } from './commands/serve.ts';
import { serveWorkers } from './commands/serve-workers.ts';
import { userSecretsCommand } from './commands/user-secrets.ts';
import { CliExit } from './context.ts';
import { type Io, processIo } from './output.ts';
import { parseFailure, unknownCommand } from './usage.ts';

const HELP = `nexus ${VERSION}: a credential broker for AI agents

Usage: nexus <command> [options]

Broker
  serve [--no-migrate] [--no-worker] [--role all|gateway|broker] [--workers N]
                                    run the broker (configuration from the environment); background
                                    jobs (token refresh, webhooks, housekeeping) run in it unless --no-worker;
                                    --role gateway: public surface only (DMZ), broker: admin surface and jobs;
                                    --workers N: N processes on the same ports, one per core (PostgreSQL,
                                    and REDIS_URL while rate limits are on; Linux)
  worker [--no-migrate]             run only the background jobs (pair with \`serve --no-worker\`)
  dev [--port N] [--idp-port N]     see a consent work: the broker on its embedded defaults (data in .nexus/dev)
                                    with a demo OpenID provider, a demo provider and agent, all on 127.0.0.1;
                                    prints the URL to open. Never in production mode (docs/dev.md)
  migrate [--status]                apply pending database migrations (--status: list, exit 3 if pending)
  doctor                            check configuration, keys, database and access; say how to fix problems
  proxy                             run the credential proxy on its own (NEXUS_URL, NEXUS_ROUTES, the proxy's
                                    agent credential NEXUS_CLIENT_ID/NEXUS_CLIENT_SECRET; docs/proxy.md)
  mcp                               Nexus as an MCP server over stdio, relayed to the broker's /mcp (NEXUS_URL, the
                                    agent's NEXUS_CLIENT_ID/NEXUS_CLIENT_SECRET or NEXUS_AGENT_TOKEN, NEXUS_USER_ID; docs/mcp.md)

Moving from the original Go Nexus (docs/migrating.md)
  import original --database-url postgres://… --encryption-key KEY [--apply] [--with-audit]
                                    read the original's database: providers, aliases, active connections (same
                                    ids, tokens re-sealed) and, with --with-audit, its audit events as history.
                                    A dry run that writes nothing unless --apply; re-run it to pick up what changed.
                                    KEY: the original's ENCRYPTION_KEY (or --encryption-key-file FILE;
                                    ORIGINAL_DATABASE_URL and ORIGINAL_ENCRYPTION_KEY are read when the flags are absent)

Keys
  keys generate [--file PATH]       print a new 32-byte key (for ENCRYPTION_KEY, STATE_KEY), or write a key file
  keys generate --transit           with KEY_PROVIDER=transit: a new key wrapped by Vault Transit (vault:v1:...)
  keys transit-rewrap               after rotating the Transit key: print every key re-wrapped under its newest version
  keys rotate [--user-secrets]      add a new primary encryption key (--user-secrets: for the user-secrets ring only)
  keys rewrap [--batch-size N] [--wait S]
                                    re-encrypt every stored secret under the primary key (resumable); first waits
                                    up to S seconds (default 15) for every running broker to hold and use that key
  keys rotate-signing               new signing key for agent/session tokens (old ones stay published until their tokens expire)

Secret backends
  secrets set NAME --user U [--zone Z] [--from-file F | --value V]
                                    store a user secret (a new version); the value is prompted for without echo, or read from stdin
  secrets get NAME --user U [--zone Z] [--at-version N]   print a user secret's value (audited)
  secrets list|versions|delete [NAME] --user U [--zone Z] list a user's secrets, a secret's versions, or delete one
  secrets migrate --to BACKEND [--dry-run] [--force]
                                    copy provider credentials from SECRET_BACKEND to BACKEND (configured by
                                    the same variables), each read back; resumable; then set SECRET_BACKEND
  secrets migrate --tokens [--dry-run]
                                    move connection credentials to where TOKEN_STORE says (the database, or
                                    connections/<id> in SECRET_BACKEND), each read back; resumable

Access
  admin-keys create --name NAME [--scope full|read|agent]
                                    create an admin API key (printed once); scope: full (default, every
                                    route), read (admin reads, never a credential) or agent (agent API only)
  admin-keys list [--all]           list admin keys (--all includes revoked ones)
  admin-keys revoke ID|NAME         revoke an admin key

Audit
  audit verify                      verify the audit log's hash chain (exit 1: broken; 3: not checked)

Operating a broker over its admin API (the operator CLI, @nexus-broker/cli; \`nexus <command> --help\`)
  validate|plan|apply|export -f FILE  declarative configuration: providers, aliases, agents, scopes, issuers
  login, providers, agents, connections, sessions, scopes, trusted-issuers, audit list|tail, completion,
  doctor --remote (checks a running broker over HTTP)

Global options: --json (machine-readable output), --help, --version
Configuration reference: docs/configuration.md`;

/** Runs one command; returns the exit code. Unexpected errors print a message, never key material. */
export async function main(
  argv: readonly string[],
  io: Io = processIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const operator = operatorCommand(argv);
  if (operator !== undefined) return runOperatorCli(io, argv, env);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(parseFailure(error, argv, OPTIONS));
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, sub, ...rest] = positionals;
  const json = values.json === true;
  try {
    if (values.version) {
      io.out(VERSION);
      return 0;
    }
    if (values.help || command === undefined || command === 'help') {
      io.out(HELP);
      return 0;
    }
    switch (command) {
      case 'serve': {
        const serveOptions = {
          migrate: values['no-migrate'] !== true,
          worker: values['no-worker'] !== true,
          role: values.role,
          reusePort: values['reuse-port'] === true,
        };
        if (values.workers === undefined) return await serve(io, env, serveOptions);
        return await serveWorkers(io, env, {
          ...serveOptions,
          workers: Number(values.workers),
          prepare: async () => {
            await serve(io, env, { ...serveOptions, prepareOnly: true });
          },
        });
      }
      case 'worker':
        return await worker(env, { migrate: values['no-migrate'] !== true });
      case 'dev': {
        // Loaded only here: `nexus serve` does not read the demo provider's code (docs/dev.md).
        const { dev } = await import('./commands/dev.ts');
        return await dev(io, env, { port: values.port, idpPort: values['idp-port'] });
      }
      case 'proxy':
        return await proxyCommand(env);
      case 'mcp':
        return await mcpCommand(env);
      case 'migrate':
        return await migrateCommand(io, env, { status: values.status === true, json });
      case 'doctor':
        return await doctor(io, env, json);
      case 'keys':
        if (sub === 'generate' && values.transit === true) return await keysGenerateTransit(io, env);
        if (sub === 'generate') return keysGenerate(io, { file: values.file });
        if (sub === 'transit-rewrap') return await keysTransitRewrap(io, env, json);
        if (sub === 'rotate') return keysRotate(io, env, { userSecrets: values['user-secrets'] === true });
        if (sub === 'rotate-signing') return await keysRotateSigning(io, env, json);
        if (sub === 'rewrap')
          return await keysRewrap(io, env, {
            batchSize: positiveInt(values['batch-size'], 200),
            waitSeconds: waitSeconds(values.wait),
            json,
          });
        break;
      case 'admin-keys':
        if (sub === 'create') {
          if (values.name === undefined) throw new CliExit('admin-keys create: --name is required', 2);
          return await adminKeysCommand(
            io,
            env,
            { verb: 'create', name: values.name, scope: values.scope },
            json,
          );
        }
        if (sub === 'list')
          return await adminKeysCommand(io, env, { verb: 'list', all: values.all === true }, json);
        if (sub === 'revoke') {
          if (rest[0] === undefined) throw new CliExit('admin-keys revoke: give the key id or name', 2);
          return await adminKeysCommand(io, env, { verb: 'revoke', ref: rest[0] }, json);
        }
        break;
      case 'import':
        return await importCommand(io, env, {
          source: sub,
          databaseUrl: values['database-url'],
          encryptionKey: values['encryption-key'],
          encryptionKeyFile: values['encryption-key-file'],
          apply: values.apply === true,
          dryRun: values['dry-run'] === true,
          withAudit: values['with-audit'] === true,
          json,
        });
      case 'audit':
        if (sub === 'verify') return await auditVerify(io, env, json);
        break;
      case 'secrets':
        if (sub === 'migrate')
          return await secretsMigrate(io, env, {
            to: values.to,
            dryRun: values['dry-run'] === true,
            force: values.force === true,
            tokens: values.tokens === true,
            json,
          });
        if (sub === 'set' || sub === 'get' || sub === 'list' || sub === 'delete' || sub === 'versions')
          return await userSecretsCommand(io, env, {
            verb: sub,
            name: rest[0],
            user: values.user,
            zone: values.zone,
            value: values.value,
            fromFile: values['from-file'],
            version: values['at-version'],
            json,
          });
        break;
    }
    io.err(unknownCommand(positionals, OPERATOR_COMMANDS));
    return 2;
  } catch (error) {
    if (error instanceof CliExit) {
      io.err(error.message);
      return error.code;
    }
    io.err(`nexus: ${(error as Error).message ?? String(error)}`);
    return 1;
  }
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  json: { type: 'boolean' },
  'no-migrate': { type: 'boolean' },
  'no-worker': { type: 'boolean' },
  workers: { type: 'string' },
  'reuse-port': { type: 'boolean' },
  role: { type: 'string' },
  port: { type: 'string' },
  'idp-port': { type: 'string' },
  transit: { type: 'boolean' },
  status: { type: 'boolean' },
  file: { type: 'string' },
  name: { type: 'string' },
  scope: { type: 'string' },
  all: { type: 'boolean' },
  'batch-size': { type: 'string' },
  to: { type: 'string' },
  'dry-run': { type: 'boolean' },
  tokens: { type: 'boolean' },
  user: { type: 'string' },
  zone: { type: 'string' },
  value: { type: 'string' },
  'from-file': { type: 'string' },
  'at-version': { type: 'string' },
  'user-secrets': { type: 'boolean' },
  force: { type: 'boolean' },
  wait: { type: 'string' },
  'database-url': { type: 'string' },
  'encryption-key': { type: 'string' },
  'encryption-key-file': { type: 'string' },
  apply: { type: 'boolean' },
  'with-audit': { type: 'boolean' },
} as const;

function parse(argv: readonly string[]) {
  return parseArgs({ args: [...argv], allowPositionals: true, strict: true, options: OPTIONS });
}

function positiveInt(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10_000)
    throw new CliExit('--batch-size must be a whole number from 1 to 10000', 2);
  return n;
}

function waitSeconds(value: string | undefined): number {
  if (value === undefined) return 15;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 600)
    throw new CliExit('--wait must be a whole number of seconds from 0 to 600', 2);
  return n;
}

/** Commands of the operator CLI (packages/cli), which talks to a broker over HTTP. */
const OPERATOR_COMMANDS = new Set([
  'validate',
  'plan',
  'apply',
  'export',
  'login',
  'providers',
  'agents',
  'connections',
  'scopes',
  'trusted-issuers',
  'completion',
  'sessions',
]);

function operatorCommand(argv: readonly string[]): string | undefined {
  const [command, sub] = argv.filter((a) => !a.startsWith('-'));
  if (command === undefined) return undefined;
  if (OPERATOR_COMMANDS.has(command)) return command;
  if (command === 'audit' && sub !== undefined && sub !== 'verify') return command;
  if (command === 'doctor' && argv.includes('--remote')) return command;
  return undefined;
}

/** Hands the command to the operator CLI (its own process, same terminal), when it is installed. */
function runOperatorCli(io: Io, argv: readonly string[], env: NodeJS.ProcessEnv): number {
  let bin: string;
  try {
    bin = join(
      dirname(createRequire(import.meta.url).resolve('@nexus-broker/cli/package.json')),
      'bin',
      'nexus.js',
    );
  } catch {
    io.err(
      `\`nexus ${argv[0]}\` is a command of the operator CLI: install it with \`npm install @nexus-broker/cli\` (or run \`npx @nexus-broker/cli ${argv[0]}\`).`,
    );
    return 2;
  }
  const result = spawnSync(process.execPath, [bin, ...argv], { stdio: 'inherit', env });
  return result.status ?? 1;
}
