import { describeEnv } from './schema.ts';

/** Renders `docs/configuration.md` from the schema, so the reference cannot drift from the code. */
export function renderConfigDocs(): string {
  const vars = describeEnv();
  const groups = [...new Set(vars.map((v) => v.group))];
  const escapeCell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from apps/broker/src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'The broker reads its configuration from environment variables once, at start-up. Every problem',
    'is reported at once, each naming the variable and the fix; the broker does not start until all',
    'are fixed. An empty value counts as unset. Run `nexus doctor` to check a configuration.',
    '',
    'Variables marked **secret** are never printed: not in errors, logs or `doctor` output.',
    '',
  ];
  for (const group of groups) {
    lines.push(`## ${group}`, '', '| Variable | Default | Description |', '|---|---|---|');
    for (const v of vars.filter((x) => x.group === group)) {
      const name = `\`${v.name}\`${v.secret ? ' (**secret**)' : ''}`;
      const def = v.default === undefined ? '—' : v.default === '' ? '(empty)' : `\`${v.default}\``;
      lines.push(`| ${name} | ${def} | ${escapeCell(v.description)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Run modes',
    '',
    '- **development** (default): keys are generated into `NEXUS_DATA_DIR/keys.json` (mode 0600) on first start, with a loud warning; a one-time admin API key is printed; `http://localhost` URLs are accepted for providers and return URLs.',
    '- **production** (`NEXUS_ENV=production` or `NODE_ENV=production`): the broker refuses to start without `ENCRYPTION_KEY` (or `ENCRYPTION_KEYS`, or `NEXUS_KEY_FILE`), `STATE_KEY` and an https `BASE_URL`, and never generates keys. Provider URLs must be https.',
    '- **test**: like development, for automated tests.',
    '',
  );
  return lines.join('\n');
}
