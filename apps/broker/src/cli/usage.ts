/**
 * Usage errors of `nexus` (issue #24): an unknown command, subcommand or option is named in one
 * line with the nearest known spelling, and exits 2. The operator CLI (packages/cli/src/usage.ts)
 * does the same, in its own style (`error: ` first, as its other errors); the two packages share
 * no code, since either is installed alone.
 */

/** Commands this CLI runs, with their subcommands (empty: none). */
export const BROKER_COMMANDS: Readonly<Record<string, readonly string[]>> = {
  serve: [],
  worker: [],
  dev: [],
  proxy: [],
  migrate: [],
  doctor: [],
  import: ['original'],
  keys: ['generate', 'transit-rewrap', 'rotate', 'rewrap', 'rotate-signing'],
  'admin-keys': ['create', 'list', 'revoke'],
  audit: ['verify'],
  secrets: ['set', 'get', 'list', 'versions', 'delete', 'migrate'],
  help: [],
};

/** Edit distance with transpositions (`sevre` is one step from `serve`). */
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
 * The known word nearest to `word`, or undefined when none is close enough to be a likely typo
 * (at most a third of its letters differ, never more than 3; a prefix of 3+ letters is one step).
 */
export function closest(word: string, known: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of known) {
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

const HELP = 'Run `nexus --help` for usage.';

/**
 * `unknown command: provider list. Did you mean \`nexus providers list\`? Run …`: the nearest
 * command (this CLI's or the operator CLI's), else the nearest subcommand of a known command.
 */
export function unknownCommand(positionals: readonly string[], operatorCommands: Iterable<string>): string {
  const [command = '', sub, ...rest] = positionals;
  const subs = BROKER_COMMANDS[command];
  let near: string | undefined;
  if (subs === undefined) {
    const name = closest(command, [...Object.keys(BROKER_COMMANDS), ...operatorCommands]);
    if (name !== undefined) near = [name, sub, ...rest].filter((w) => w !== undefined).join(' ');
  } else if (sub !== undefined) {
    const name = closest(sub, subs);
    if (name !== undefined) near = [command, name, ...rest].join(' ');
  }
  if (subs !== undefined && subs.length > 0 && sub === undefined)
    return `\`nexus ${command}\` needs a subcommand: ${subs.join(', ')}. ${HELP}`;
  const hint = near === undefined ? '' : ` Did you mean \`nexus ${near}\`?`;
  return `unknown command: ${positionals.join(' ')}.${hint} ${HELP}`;
}

/**
 * The first argument that node's parser refused as an unknown option (`--bogus`, or `-x` out of a
 * group such as `-hx`), or undefined.
 */
function unknownOption(
  argv: readonly string[],
  options: Readonly<Record<string, { type: string; short?: string }>>,
): string | undefined {
  const shorts = new Map(Object.values(options).map((o) => [o.short, o] as const));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return undefined;
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=', 1)[0]!;
      const option = options[name];
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

/** One line for a command line node's parser refused: the option named, the nearest one, --help. */
export function parseFailure(
  error: unknown,
  argv: readonly string[],
  options: Readonly<Record<string, { type: string; short?: string }>>,
): string {
  const option =
    (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
      ? unknownOption(argv, options)
      : undefined;
  if (option === undefined) return `${(error as Error).message}. ${HELP}`;
  const near = option.startsWith('--')
    ? closest(
        option,
        Object.keys(options).map((name) => `--${name}`),
      )
    : undefined;
  return `unknown flag ${option}.${near === undefined ? '' : ` Did you mean \`${near}\`?`} ${HELP}`;
}
