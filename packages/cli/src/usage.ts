/**
 * Usage errors (issue #24): an unknown command, subcommand or flag is named in one line, with the
 * closest known spelling when there is one, and exits 2, as a usage error does in most CLIs; 1
 * stays for failures of the work itself.
 */
import { COMMANDS } from './help.ts';
import { CliError } from './io.ts';

export const USAGE_EXIT = 2;

/**
 * The exit code of a usage error: 2, except with --detailed-exitcode, where 2 means "changes" and a
 * script such as `nexus plan --detailed-exitcode || [ $? -eq 2 ]` must not take a typo for success.
 */
export function usageExit(argv: readonly string[]): number {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--detailed-exitcode') ? 1 : USAGE_EXIT;
}

/** Edit distance with transpositions (`--yse` is one step from `--yes`), for typos and plurals. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  return d[a.length]![b.length]!;
}

/**
 * The known word nearest to `word`, or undefined when none is near enough to be a likely typo
 * (at most a third of the word's letters differ, and never more than 3): `provider` → `providers`.
 */
export function closest(word: string, known: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of known) {
    // A prefix of at least three letters is one step away: `conn` → `connections`.
    const prefix =
      Math.min(word.length, candidate.length) >= 3 &&
      (candidate.startsWith(word) || word.startsWith(candidate));
    const d = prefix ? 1 : distance(word, candidate);
    if (d < bestDistance || (d === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** ` Did you mean \`X\`?`, or nothing. */
export function suggestion(word: string, known: Iterable<string>, show = (s: string) => s): string {
  const near = closest(word, known);
  return near === undefined ? '' : ` Did you mean \`${show(near)}\`?`;
}

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
}

/**
 * The first argument node's parser refused as an unknown option, spelled as the user typed it
 * (`--bogus`, or `-x` out of a group such as `-yx`); undefined if none is found.
 */
export function unknownFlag(
  argv: readonly string[],
  options: Readonly<Record<string, FlagSpec>>,
): string | undefined {
  const shorts = new Map(Object.values(options).map((o) => [o.short, o] as const));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return undefined;
    if (arg.startsWith('--')) {
      const [name] = arg.slice(2).split('=', 1);
      const option = options[name!];
      if (option === undefined) return `--${name}`;
      if (option.type === 'string' && !arg.includes('=')) i++; // its value is the next argument
    } else if (arg.startsWith('-') && arg.length > 1) {
      for (let c = 1; c < arg.length; c++) {
        const option = shorts.get(arg[c]!);
        if (option === undefined) return `-${arg[c]}`;
        if (option.type === 'string') {
          if (c === arg.length - 1) i++;
          break; // the rest of the group, or the next argument, is its value
        }
      }
    }
  }
  return undefined;
}

/** The usage error for a refused command line, naming the flag and where help is. */
export function parseFailure(
  error: unknown,
  argv: readonly string[],
  options: Readonly<Record<string, FlagSpec>>,
  command: string | undefined,
): CliError {
  const help = `Run \`nexus ${command === undefined ? '' : `${command} `}--help\` for usage.`;
  const code = (error as { code?: unknown }).code;
  const flag = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? unknownFlag(argv, options) : undefined;
  if (flag !== undefined) {
    const longs = Object.keys(options).map((name) => `--${name}`);
    const hint = flag.startsWith('--') ? suggestion(flag, longs) : '';
    return new CliError(`unknown flag ${flag}.${hint} ${help}`, USAGE_EXIT);
  }
  // A known flag used wrongly ("Option '-f, --file <value>' argument missing"): node's text is clear.
  return new CliError(`${(error as Error).message}. ${help}`, USAGE_EXIT);
}

/** `nexus providers lst`: names the subcommand, suggests the nearest, points at the command's help. */
export function unknownSubcommand(command: string, verb: string | undefined): CliError {
  const known = COMMANDS[command]?.subcommands ?? [];
  const help = `Run \`nexus ${command} --help\` for usage.`;
  if (verb === undefined)
    return new CliError(`\`nexus ${command}\` needs a subcommand: ${known.join(', ')}. ${help}`, USAGE_EXIT);
  const hint = suggestion(verb, known, (s) => `nexus ${command} ${s}`);
  return new CliError(`unknown subcommand \`nexus ${command} ${verb}\`.${hint} ${help}`, USAGE_EXIT);
}
