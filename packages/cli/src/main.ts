/**
 * The `nexus` operator CLI: argument parsing and dispatch. Broker-host commands (serve, migrate,
 * keys, …) are handed to the broker's own CLI when `@nexus/broker` is installed beside this one.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { NexusError } from '@nexus-broker/sdk';
import { type Ctx, type Flags, makeCtx } from './commands/context.ts';
import { applyCommand, exportCommand, planCommand, validateCommand } from './commands/declarative.ts';
import { login } from './commands/login.ts';
import { doctorRemote, sessions } from './commands/remote.ts';
import {
  agents,
  audit,
  connections,
  providers,
  scopes,
  secrets,
  trustedIssuers,
} from './commands/resources.ts';
import { completionScript } from './completion.ts';
import { BROKER_COMMANDS, COMMANDS, commandHelp, mainHelp } from './help.ts';
import { CliError, type Io, processIo } from './io.ts';
import { ManifestError } from './manifest.ts';
import { describeApiError } from './render.ts';
import { parseFailure, suggestion, USAGE_EXIT, unknownSubcommand, usageExit } from './usage.ts';

export const VERSION = '0.1.0';

const OPTIONS = {
  file: { type: 'string', short: 'f' },
  prune: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  'update-secrets': { type: 'boolean' },
  'agent-secrets': { type: 'string' },
  out: { type: 'string' },
  url: { type: 'string' },
  profile: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  user: { type: 'string' },
  zone: { type: 'string' },
  follow: { type: 'boolean' },
  limit: { type: 'string' },
  'event-type': { type: 'string' },
  actor: { type: 'string' },
  resource: { type: 'string' },
  since: { type: 'string' },
  cursor: { type: 'string' },
  status: { type: 'string' },
  interval: { type: 'string' },
  'no-verify': { type: 'boolean' },
  'include-deleted': { type: 'boolean' },
  remote: { type: 'boolean' },
  'detailed-exitcode': { type: 'boolean' },
  'client-id': { type: 'string' },
  'client-secret-file': { type: 'string' },
  name: { type: 'string' },
  scopes: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

type Handler = (ctx: Ctx, verb: string | undefined) => Promise<number> | number;
const HANDLERS: Record<string, Handler> = {
  validate: (ctx) => validateCommand(ctx),
  plan: (ctx) => planCommand(ctx),
  apply: (ctx) => applyCommand(ctx),
  export: (ctx) => exportCommand(ctx),
  login: (ctx) => login(ctx),
  providers,
  agents,
  scopes,
  'trusted-issuers': trustedIssuers,
  sessions,
  doctor: (ctx) => doctorRemote(ctx),
  audit,
  secrets,
  connections,
  completion: (ctx, shell) => {
    ctx.io.write(completionScript(shell));
    return 0;
  },
};

/** Commands without a subcommand: the first positional is an argument, not a verb. */
const NO_VERB = new Set(['validate', 'plan', 'apply', 'export', 'login']);

function isBrokerCommand(argv: readonly string[]): boolean {
  const [command, sub] = argv.filter((a) => !a.startsWith('-'));
  if (command === undefined) return false;
  return (
    (BROKER_COMMANDS.includes(command) &&
      !(command === 'doctor' && ['--remote', '--help', '-h'].some((f) => argv.includes(f)))) ||
    (command === 'audit' && sub === 'verify') ||
    (command === 'secrets' && (sub === 'migrate' || sub === 'set'))
  );
}

/** Runs the broker's own CLI for broker-host commands; null when it is not installed. */
function delegate(argv: readonly string[]): number | null {
  let bin: string;
  try {
    bin = createRequire(import.meta.url).resolve('@nexus/broker/bin/nexus.js');
  } catch {
    return null;
  }
  const r = spawnSync(process.execPath, [bin, ...argv], { stdio: 'inherit' });
  return r.status ?? 1;
}

/**
 * Long options the original Go CLI (`-file`, `-prune`) and Terraform (`-detailed-exitcode`) spell
 * with one dash, read as their `--` forms (node's parser would take `-file` for `-f ile`).
 */
const SINGLE_DASH = /^-(file|prune|detailed-exitcode)(=.*)?$/;

export function normalizeArgs(argv: readonly string[]): string[] {
  const end = argv.indexOf('--');
  return argv.map((a, i) => (end !== -1 && i > end ? a : a.replace(SINGLE_DASH, '--$1$2')));
}

/** Runs one command; returns the exit code. Errors print a message (never a secret). */
export async function main(rawArgv: readonly string[], io: Io = processIo()): Promise<number> {
  if (isBrokerCommand(rawArgv)) {
    const code = delegate(rawArgv);
    if (code !== null) return code;
    io.err(
      `\`nexus ${rawArgv[0]}\` runs on the broker host: install @nexus/broker there (this CLI only talks to a broker over HTTP).`,
    );
    return 1;
  }
  const argv = normalizeArgs(rawArgv);
  let parsed: { values: Flags & { help?: boolean; version?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }) as never;
  } catch (error) {
    const first = argv.find((a) => !a.startsWith('-'));
    io.err(
      `error: ${parseFailure(error, argv, OPTIONS, first && HANDLERS[first] ? first : undefined).message}`,
    );
    return usageExit(argv);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.version) {
    io.out(VERSION);
    return 0;
  }
  if (command === undefined || command === 'help') {
    const topic = rest[0];
    io.out(topic && COMMANDS[topic] ? commandHelp(topic) : mainHelp());
    return 0;
  }
  const handler = HANDLERS[command];
  if (!handler) {
    const known = [...Object.keys(HANDLERS), ...BROKER_COMMANDS, 'help'];
    io.err(
      `error: unknown command \`${command}\`.${suggestion(command, known, (c) => `nexus ${c}`)} Run \`nexus --help\` for usage.`,
    );
    return usageExit(argv);
  }
  if (values.help) {
    io.out(commandHelp(command));
    return 0;
  }
  let ctx: Ctx | undefined;
  try {
    const verb = NO_VERB.has(command) ? undefined : rest[0];
    const args = NO_VERB.has(command) ? rest : rest.slice(1);
    const subcommands = COMMANDS[command]?.subcommands;
    // Checked before the handler runs, so a typo is named even without broker credentials.
    if (command !== 'completion' && subcommands && !subcommands.includes(verb ?? ''))
      throw unknownSubcommand(command, verb);
    ctx = makeCtx(io, values, args);
    return await handler(ctx, verb);
  } catch (error) {
    if (error instanceof ManifestError) {
      io.err(error.message);
      io.err(`${error.problems.length} problem${error.problems.length === 1 ? '' : 's'} in ${error.file}`);
      return 1;
    }
    if (error instanceof CliError) {
      io.err(`error: ${error.message}`);
      return error.exitCode === USAGE_EXIT ? usageExit(argv) : error.exitCode;
    }
    if (error instanceof NexusError) {
      const hint = error.status === 401 ? ' (check API_KEY / NEXUS_API_KEY or the profile)' : '';
      // Only a request that was made fails this way, so the client (and its URL) exists.
      const url = error.status === undefined ? ctx?.api().url : undefined;
      io.err(`error: ${describeApiError(error, url)}${hint}`);
      return 1;
    }
    io.err(`error: ${(error as Error).message}`);
    return 1;
  }
}
