/**
 * docs/catalog.md, rendered from the catalogue entries (`npm run docs:catalog`;
 * apps/broker/test/catalog.test.ts fails when the page is out of date).
 */
import type { CatalogEntry } from './catalog.types.ts';

/** The callback every OAuth app registers: BASE_URL and REDIRECT_PATH (default /auth/callback). */
const REDIRECT_URI = '`<BASE_URL>/auth/callback`';

const code = (values: readonly string[]) => values.map((v) => `\`${v}\``).join(', ');
/** Text of an entry inside a Markdown table cell or list item. */
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
/** A heading's anchor as GitHub makes it. */
const anchor = (entry: CatalogEntry) =>
  `${entry.name} ${entry.key}`
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');

function authLine(entry: CatalogEntry): string {
  const o = entry.oauth2;
  if (o !== undefined) {
    const how = [
      o.discovery === true ? `OpenID discovery at ${o.issuer}` : undefined,
      o.pkce ? 'PKCE' : 'no PKCE',
      o.token_auth_method,
      o.scope_separator !== undefined && o.scope_separator !== ' '
        ? `scopes joined by "${o.scope_separator}"`
        : undefined,
    ].filter((v) => v !== undefined);
    return `OAuth 2.0 (${how.join(', ')})`;
  }
  const s = entry.static;
  const fields = Object.keys((s?.capture.properties as Record<string, unknown> | undefined) ?? {});
  return `${entry.auth_type}: the user gives ${code(fields)}; sent as \`${s?.strategy.type}\``;
}

function refreshLine(entry: CatalogEntry): string | undefined {
  const r = entry.oauth2?.refresh;
  if (r === undefined) return undefined;
  if (!r.access_token_expires) return 'access tokens do not expire';
  const parts = ['access tokens expire and are refreshed'];
  parts.push(r.rotating ? 'each refresh returns a new refresh token' : 'the refresh token stays the same');
  if (r.refresh_token_expires === true) parts.push('refresh tokens themselves expire');
  return parts.join('; ');
}

function section(entry: CatalogEntry): string[] {
  const lines = [`## ${entry.name} (\`${entry.key}\`)`, ''];
  if (entry.description !== undefined) lines.push(cell(entry.description), '');
  const item = (label: string, text: string | undefined) => {
    if (text !== undefined && text !== '') lines.push(`- **${label}:** ${text}`);
  };
  item('Template', `\`${entry.key}\`, version ${entry.version}`);
  item('Categories', entry.categories.join(', '));
  item('Authentication', authLine(entry));
  const scopes = entry.oauth2?.default_scopes ?? [];
  if (entry.oauth2 !== undefined) item('Default scopes', scopes.length > 0 ? code(scopes) : 'none');
  const extra = Object.entries(entry.oauth2?.authorize_params ?? {}).map(([k, v]) => `${k}=${v}`);
  if (extra.length > 0) item('Authorize parameters', code(extra));
  item('Refresh', refreshLine(entry));
  if (entry.oauth2 !== undefined) item('Redirect URI to register', REDIRECT_URI);
  if (entry.api !== undefined) item('API base URL', `\`${entry.api.base_url}\``);
  for (const [name, p] of Object.entries(entry.parameters ?? {})) {
    const detail = [
      p.description === undefined ? undefined : cell(p.description),
      `pattern \`${p.pattern}\``,
      p.example === undefined ? undefined : `e.g. \`${p.example}\``,
      p.default === undefined ? undefined : `default \`${p.default}\``,
    ].filter((v) => v !== undefined);
    item(`Parameter \`${name}\``, `${cell(p.title)} (${detail.join('; ')})`);
  }
  for (const [name, l] of Object.entries(entry.learnt ?? {}))
    item(
      `Learnt at consent \`${name}\``,
      l.from === 'api'
        ? `\`${l.path}\` of the answer to GET \`${l.url}\` with the new access token`
        : `\`${l.path}\` of the token response`,
    );
  if (entry.static?.help !== undefined) item('Where the user finds the key', cell(entry.static.help));
  const settings = entry.setup?.app_settings ?? [];
  if (settings.length > 0) {
    lines.push('- **App settings:**');
    for (const setting of settings) lines.push(`  - ${cell(setting)}`);
  }
  item('Console', entry.setup?.console_url);
  item('Documentation', entry.docs);
  item('Source of these facts', entry.source);
  lines.push('');
  return lines;
}

export function renderCatalogDocs(entries: readonly CatalogEntry[]): string {
  const sorted = [...entries].sort((a, b) => a.key.localeCompare(b.key));
  const lines = [
    '# Provider catalogue',
    '',
    '<!-- Generated from catalog/providers/*.yaml by `npm run docs:catalog`. Do not edit by hand. -->',
    '',
    `Nexus connects to these ${sorted.length} APIs by name (decision 0015). A catalogue entry is a template: it`,
    'expands into an ordinary provider profile, with the fields you give winning over its own, and the',
    'provider records which entry and version it was made from (`params.template`).',
    '',
    '```sh',
    'nexus providers add google --client-id "$GOOGLE_CLIENT_ID" --client-secret-file google.secret',
    `curl -X POST "$NEXUS_URL/providers" -H "X-API-Key: $API_KEY" -H 'content-type: application/json' \\`,
    '  -d \'{"profile": {"template": "google", "client_id": "…", "client_secret": "…"}}\'',
    '```',
    '',
    'or `template: google` in a provider of `nexus.yaml`. `GET /catalog` lists the entries and',
    '`GET /catalog/{key}` returns one whole; `nexus plan` says when a provider was made from an older',
    'version of its entry.',
    '',
    `Every OAuth app registers the broker's callback as its redirect URI: ${REDIRECT_URI} (\`REDIRECT_PATH\``,
    'changes the path). Parameters are given per connection, in `connection_config` of request-connection.',
    '',
    '| API | key | auth type | categories |',
    '|---|---|---|---|',
    ...sorted.map(
      (e) =>
        `| [${cell(e.name)}](#${anchor(e)}) | \`${e.key}\` | ${e.auth_type} | ${e.categories.join(', ')} |`,
    ),
    '',
  ];
  for (const entry of sorted) lines.push(...section(entry));
  return lines.join('\n');
}
