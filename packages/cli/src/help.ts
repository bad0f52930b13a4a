// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/** Help texts: one per command, each with examples. `nexus completion` reads the same table. */

export interface CommandHelp {
  usage: string;
  summary: string;
  flags?: string[];
  examples: string[];
  subcommands?: string[];
}

export const GLOBAL_FLAGS = [
  '--url URL            broker URL (else NEXUS_URL, BROKER_BASE_URL, the profile, http://localhost:8080)',
  '--profile NAME       use a profile stored by `nexus login` (else NEXUS_PROFILE)',
  '-o, --output FORMAT  table (default), json or yaml',
  '--json               same as --output json',
  '-y, --yes            confirm without asking (else a terminal prompt, or y/yes piped on stdin)',
  '-h, --help           show help',
];

export const COMMANDS: Record<string, CommandHelp> = {
  validate: {
    usage: 'nexus validate [-f FILE]',
    summary:
      'check a manifest against the schema; errors point at file:line:column (exit 0 valid, 1 invalid)',
    flags: ['-f, --file FILE  the manifest (- for stdin; default nexus-providers.yaml)'],
    examples: ['nexus validate -f nexus.yaml', 'GITHUB_CLIENT_SECRET=x nexus validate'],
  },
  plan: {
    usage: 'nexus plan [-f FILE] [--prune] [--update-secrets] [--detailed-exitcode]',
    summary:
      'show what apply would change, and orphans (! ORPHAN lines); exit 0 on success, changes or not, 1 on an error',
    flags: [
      '-f, --file FILE       the manifest (default nexus-providers.yaml)',
      '--prune               also delete objects the file does not list (only kinds the file has a section for); without it they are listed as orphans',
      '--update-secrets      re-send secrets (write-only on the broker, so they cannot be compared)',
      '--detailed-exitcode   exit 0 no changes, 2 changes, 1 error (as terraform plan -detailed-exitcode)',
    ],
    examples: [
      'nexus plan',
      'nexus plan -f nexus.yaml --prune --json',
      'nexus plan -f nexus.yaml --detailed-exitcode || [ $? -eq 2 ]',
    ],
  },
  apply: {
    usage: 'nexus apply [-f FILE] [--yes] [--prune] [--update-secrets] [--agent-secrets FILE]',
    summary:
      'make the broker match the manifest; asks for confirmation unless --yes; stops at the first failure without rolling back',
    flags: [
      '-f, --file FILE        the manifest (default nexus-providers.yaml)',
      '-y, --yes              apply without asking (without a terminal: this, or y/yes piped on stdin)',
      '--prune                also delete objects the file does not list',
      '--update-secrets       re-send secrets',
      '--agent-secrets FILE   issue client secrets for new agents and append them to FILE (mode 0600)',
    ],
    examples: [
      'nexus apply -f nexus.yaml',
      'yes | nexus apply',
      'nexus apply -f nexus.yaml --yes --prune',
      'nexus apply -f nexus.yaml --yes --json',
    ],
  },
  export: {
    usage: 'nexus export [--out FILE]',
    summary: "write today's configuration as a manifest (secrets as ${VAR} placeholders, never values)",
    flags: ['--out FILE   write to FILE instead of stdout'],
    examples: ['nexus export > nexus.yaml', 'nexus export --out nexus.yaml && nexus plan -f nexus.yaml'],
  },
  login: {
    usage: 'nexus login --url URL [--profile NAME]',
    summary:
      'store a profile (URL and admin API key, read from stdin or a hidden prompt) in the user config file (mode 0600)',
    flags: [
      '--url URL        the broker',
      '--profile NAME   profile name (default "default")',
      '--no-verify       do not check the key against the broker',
    ],
    examples: [
      'nexus login --url https://nexus.example.com',
      'printf %s "$KEY" | nexus login --url https://nexus.example.com --profile prod',
    ],
  },
  providers: {
    usage:
      'nexus providers list|get|delete [NAME] | add KEY [--client-id ID] [--client-secret-file FILE] [--name NAME] [--scopes A,B]',
    summary:
      'list providers, show one (never its secret), delete one (asks unless --yes), or add one from the provider catalogue',
    subcommands: ['list', 'get', 'delete', 'add'],
    flags: [
      '--client-id ID               add: the OAuth client id',
      '--client-secret-file FILE    add: read the client secret from FILE (- for stdin); never given on the command line',
      '--name NAME                  add: the provider name (default: the catalogue key)',
      "--scopes A,B                 add: default scopes instead of the entry's",
    ],
    examples: [
      'nexus providers add google --client-id "$GOOGLE_CLIENT_ID" --client-secret-file google.secret',
      'nexus providers add openai',
      'nexus providers list',
      'nexus providers get github -o yaml',
      'nexus providers delete github --yes',
    ],
  },
  agents: {
    usage: 'nexus agents list|get|delete|rotate-secret [AGENT_ID]',
    summary: 'list agents, show one, delete one, or issue a new client secret',
    subcommands: ['list', 'get', 'delete', 'rotate-secret'],
    flags: ['--out FILE   rotate-secret: write the secret to FILE (mode 0600) instead of stdout'],
    examples: [
      'nexus agents list --json',
      'nexus agents get support-bot',
      'nexus agents rotate-secret support-bot --out bot.secret',
    ],
  },
  scopes: {
    usage: 'nexus scopes list|delete [NAME]',
    summary: 'list or delete custom scopes',
    subcommands: ['list', 'delete'],
    examples: ['nexus scopes list', 'nexus scopes delete crm:read --yes'],
  },
  'trusted-issuers': {
    usage: 'nexus trusted-issuers list|get|delete [ISSUER|ID]',
    summary: 'list, show or delete trusted user-token issuers',
    subcommands: ['list', 'get', 'delete'],
    examples: ['nexus trusted-issuers list', 'nexus trusted-issuers delete https://idp.example.com --yes'],
  },
  audit: {
    usage:
      'nexus audit list|tail [--event-type T] [--actor A] [--resource R] [--since TIME] [--limit N] [--follow]',
    summary: 'audit events: list (newest first, one page) or tail (oldest first, --follow to keep polling)',
    subcommands: ['list', 'tail'],
    flags: [
      '--event-type T   e.g. provider.created',
      '--actor A        e.g. admin-key:ops',
      '--resource R     provider or provider:<id>',
      '--since TIME     RFC 3339',
      '--limit N        page size (1-500)',
      '--cursor C       next_cursor of a previous page',
      '--follow         tail: keep printing new events',
    ],
    examples: [
      'nexus audit list --event-type provider.created',
      'nexus audit tail --follow',
      'nexus audit list --json --limit 500',
    ],
  },
  secrets: {
    usage: 'nexus secrets list|get|delete [NAME] --user USER [--zone ZONE]',
    summary: "a user's secrets: metadata and versions only (values are never printed), or delete one",
    subcommands: ['list', 'get', 'delete'],
    flags: ['--user USER   the owning user (required)', '--zone ZONE   default "default"'],
    examples: ['nexus secrets list --user alice', 'nexus secrets get db-password --user alice --json'],
  },
  connections: {
    usage: 'nexus connections list [PROVIDER]|get ID|revoke ID',
    summary:
      'list connections (filtered; oldest first, by creation time), show a connection status, or revoke one',
    subcommands: ['list', 'get', 'revoke'],
    flags: [
      '--status S   list: filter (pending, active, attention_required, expired, revoked, failed)',
      '--user U     list: only this workspace (user)',
      "--limit N    list: at most N (default: all, fetched a page at a time in the API's id order, then sorted oldest first)",
    ],
    examples: [
      'nexus connections list --status attention_required',
      'nexus connections list github --user alice --json',
      'nexus connections get 5f0c…',
      'nexus connections revoke 5f0c… --yes',
    ],
  },
  sessions: {
    usage: 'nexus sessions get ID|close ID',
    summary: 'show an agent session (scopes, expiry, on whose behalf) or close it',
    subcommands: ['get', 'close'],
    examples: ['nexus sessions get 3b1e… --json', 'nexus sessions close 3b1e… --yes'],
  },
  doctor: {
    usage: 'nexus doctor --remote',
    summary:
      'check a running broker over HTTP: reachable, ready, TLS, the API key, clock skew, API document (exit 1 on a failure); without --remote it runs the broker host checks',
    flags: ['--remote   check the broker at --url / NEXUS_URL / the profile'],
    examples: ['nexus doctor --remote', 'nexus doctor --remote --profile prod --json'],
  },
  completion: {
    usage: 'nexus completion bash|zsh|fish',
    summary: 'print a shell completion script',
    subcommands: ['bash', 'zsh', 'fish'],
    examples: [
      'source <(nexus completion bash)',
      'nexus completion zsh > "${fpath[1]}/_nexus"',
      'nexus completion fish > ~/.config/fish/completions/nexus.fish',
    ],
  },
};

/** Commands run by the broker's own CLI on the broker host (delegated when it is installed). */
export const BROKER_COMMANDS = ['serve', 'worker', 'proxy', 'migrate', 'doctor', 'keys', 'admin-keys'];

export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `nexus: the operator CLI of the Nexus credential broker

Usage: nexus <command> [options]

Commands
${lines.join('\n')}

On the broker host (run by the broker's own CLI when @nexus/broker is installed)
  ${BROKER_COMMANDS.join(', ')}, audit verify, secrets migrate|set

Global options
${GLOBAL_FLAGS.map((f) => `  ${f}`).join('\n')}

Connection: NEXUS_URL (or BROKER_BASE_URL) and API_KEY (or NEXUS_API_KEY), or a profile from \`nexus login\`.

Examples
  nexus validate -f nexus.yaml
  nexus plan -f nexus.yaml        # exit 0 on success (--detailed-exitcode: 2 when changes), 1: error
  nexus apply -f nexus.yaml --yes
  nexus export > nexus.yaml

Run \`nexus <command> --help\` for a command's options and examples.`;
}

export function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  const flags = [...(c.flags ?? []), ...GLOBAL_FLAGS];
  return `${c.usage}

${c.summary}

Options
${flags.map((f) => `  ${f}`).join('\n')}

Examples
${c.examples.map((e) => `  ${e}`).join('\n')}`;
}
