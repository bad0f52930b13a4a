// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * End to end against a real broker (SQLite, or PostgreSQL with NEXUS_TEST_DATABASE_URL): the
 * original manifest applied unchanged, plan exit codes, drift, orphans and prune, re-apply no-op, stale
 * updates refused (If-Match), a failed apply's report, export → apply round trip, stable --json
 * shapes, and no secret value in any output.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, newSecret, nexus, REPO, SECRETS, startBroker, transcript } from './harness.ts';

const EXAMPLES = join(REPO, 'packages', 'cli', 'examples');
const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-e2e-'));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

async function admin(
  b: Broker,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const r = await fetch(`${b.url}${path}`, {
    method,
    headers: {
      'x-api-key': b.apiKey,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Key paths of a JSON value: its shape without the values (an array: the union of its objects' keys). */
function shape(v: unknown, prefix = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((item) => shape(item, `${prefix}[]`));
  if (v !== null && typeof v === 'object')
    return Object.keys(v)
      .sort()
      .flatMap((k) => [`${prefix}.${k}`, ...shape((v as Record<string, unknown>)[k], `${prefix}.${k}`)]);
  return [];
}
const keys = (v: unknown) =>
  [...new Set(shape(v))].filter((p) => !p.includes('.params.') && !p.includes('.details.')).sort();

const providerEnv = () => ({
  GITHUB_CLIENT_SECRET: newSecret('gh'),
  GOOGLE_CLIENT_SECRET: newSecret('google'),
});

describe('the original manifest, plan exit codes, drift, re-apply, export round trip', () => {
  let b: Broker;
  const env = providerEnv();
  const original = join(EXAMPLES, 'nexus-providers.yaml');
  before(async () => {
    b = await startBroker();
  });
  after(() => b.stop());

  test('applied unchanged; plan exits 0 (2 with --detailed-exitcode) before, 0 after; a second apply is a no-op', async () => {
    const plain = await nexus(b, ['plan', '-f', original], { env });
    assert.equal(plain.code, 0, 'plan exits 0 on success, changes or not (Terraform, the original)');
    assert.match(plain.stdout, /Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged\./);
    const plan1 = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], { env });
    assert.equal(plan1.code, 2, plan1.stderr);
    const terraform = await nexus(b, ['plan', '-detailed-exitcode', '-file', original], { env });
    assert.equal(terraform.code, 2, `one-dash spellings: ${terraform.stderr}`);
    assert.match(plan1.stdout, /\+ create provider github/);
    assert.match(plan1.stdout, /client_secret: \*\*\*/);
    assert.match(plan1.stdout, /Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged\./);
    const apply = await nexus(b, ['apply', '-f', original, '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /✓ created provider openai/);
    const plan2 = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], { env });
    assert.equal(plan2.code, 0, plan2.stdout);
    assert.match(plan2.stdout, /= unchanged provider github/);
    const again = await nexus(b, ['apply', '-f', original, '--yes'], { env });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /No changes/);
    const github = await admin(b, 'GET', '/providers/by-name/github');
    const view = await admin(b, 'GET', `/providers/${github.body.id}`);
    assert.equal(view.body.has_client_secret, true);
    assert.equal(view.body.version, 1, 'no write happened on the no-op apply');
  });

  test('plan exits 1 on an error (invalid file, unreachable broker, bad key), with or without --detailed-exitcode', async () => {
    const bad = write('bad.yaml', 'providers: [{name: UPPER}]\n');
    assert.equal((await nexus(b, ['plan', '--detailed-exitcode', '-f', bad])).code, 1);
    assert.equal((await nexus(b, ['plan', '-f', bad])).code, 1);
    const plainDown = await nexus(b, ['plan', '-f', original], {
      env: { ...env, NEXUS_URL: 'http://127.0.0.1:9' },
    });
    assert.equal(plainDown.code, 1);
    const down = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], {
      env: { ...env, NEXUS_URL: 'http://127.0.0.1:9' },
    });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach|fetch failed|ECONNREFUSED/i);
    const wrong = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], {
      env: { ...env, API_KEY: 'wrong-key' },
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401/);
  });

  test('drift after an out-of-band change is detected and repaired', async () => {
    const { body } = await admin(b, 'GET', '/providers/by-name/google');
    const patched = await admin(b, 'PATCH', `/providers/${body.id}`, {
      profile: { description: 'edited by hand', scopes: ['openid'] },
    });
    assert.equal(patched.status, 200);
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], { env });
    assert.equal(plan.code, 2);
    assert.match(
      plan.stdout,
      /~ update provider google\n {6}scopes: \["openid"\] → \["openid","email","https:\/\/www.googleapis.com\/auth\/drive.readonly"\]\n {6}description: "edited by hand" → "Google Workspace"/,
    );
    assert.doesNotMatch(plan.stdout, /client_secret/, 'a stored secret is not re-sent unless asked');
    assert.equal((await nexus(b, ['apply', '-f', original, '--yes'], { env })).code, 0);
    assert.equal((await nexus(b, ['plan', '--detailed-exitcode', '-f', original], { env })).code, 0);
  });

  test('a provider the file does not list is an orphan, as the original printed it; only --prune deletes it', async () => {
    const made = await admin(b, 'POST', '/providers', {
      profile: { name: 'legacy-crm', auth_type: 'api_key' },
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', original], { env });
    assert.equal(plan.code, 0, 'an orphan is not a change');
    assert.match(plan.stdout, /^! ORPHAN : legacy-crm \(would be deleted if --prune was passed\)$/m);
    assert.match(plan.stdout, /1 orphan \(in the broker, not in the file\) left alone: --prune deletes it\./);
    const apply = await nexus(b, ['apply', '-f', original, '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /^! ORPHAN : legacy-crm /m);
    assert.equal((await admin(b, 'GET', '/providers/by-name/legacy-crm')).status, 200, 'left alone');
    const prune = await nexus(b, ['plan', '--detailed-exitcode', '-f', original, '--prune'], { env });
    assert.equal(prune.code, 2);
    assert.match(prune.stdout, /- delete provider legacy-crm/);
    assert.doesNotMatch(prune.stdout, /ORPHAN/);
    const pruned = await nexus(b, ['apply', '-f', original, '--prune', '--yes'], { env });
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /✓ deleted provider legacy-crm/);
    assert.equal((await admin(b, 'GET', '/providers/by-name/legacy-crm')).status, 404);
  });

  test('agent public keys (jwks) are compared and exported like any field', async () => {
    // Real public keys: the broker refuses anything that does not import as a signing key.
    const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    const keys: Record<string, object> = { first: ec(), second: ec() };
    const key = (x: string) => ({ ...keys[x], kid: x, alg: 'ES256' });
    const withKeys = (x: string) =>
      write(
        `jwks-${x}.yaml`,
        `agents:\n  - agent_id: keyed-agent\n    allowed_scopes: []\n    jwks:\n      keys:\n        - ${JSON.stringify(key(x))}\n`,
      );
    const first = withKeys('first');
    assert.equal((await nexus(b, ['apply', '-f', first, '--yes'])).code, 0);
    assert.equal(
      (await nexus(b, ['plan', '--detailed-exitcode', '-f', first])).code,
      0,
      'the same keys: no change',
    );
    const rotated = await nexus(b, ['plan', '--detailed-exitcode', '-f', withKeys('second')]);
    assert.equal(rotated.code, 2, rotated.stdout);
    assert.match(
      rotated.stdout,
      /~ update agent keyed-agent\n {6}jwks: "sha256:[0-9a-f]{12}" → "sha256:[0-9a-f]{12}"/,
    );
    const exported = await nexus(b, ['export']);
    assert.match(exported.stdout, /agent_id: keyed-agent[\s\S]*jwks:[\s\S]*kid: first/);
  });

  test('an agent key URL set out of band is kept when the file leaves jwks_uri out', async () => {
    const made = await admin(b, 'POST', '/admin/v1/agents', {
      agent_id: 'url-keyed',
      allowed_scopes: [],
      jwks_uri: 'https://keys.example.com/jwks.json',
    });
    assert.equal(made.status, 201);
    const file = write('url-keyed.yaml', 'agents:\n  - agent_id: url-keyed\n    allowed_scopes: []\n');
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', file]);
    assert.equal(plan.code, 0, plan.stdout);
    assert.doesNotMatch(plan.stdout, /jwks_uri/);
  });

  test('audit tail --interval takes milliseconds and refuses anything else', async () => {
    const bad = await nexus(b, ['audit', 'tail', '--follow', '--interval', '2s']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--interval is milliseconds/);
  });

  test('--update-secrets re-sends secrets, shown as *** → ***', async () => {
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', original, '--update-secrets'], { env });
    assert.equal(plan.code, 2);
    assert.match(plan.stdout, /client_secret: \*\*\* → \*\*\*/);
  });

  test('export → apply is a no-op (secrets as ${VAR} placeholders, never values)', async () => {
    const out = join(dir, 'exported.yaml');
    const r = await nexus(b, ['export', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const text = readFileSync(out, 'utf8');
    assert.match(text, /client_secret: \$\{GITHUB_CLIENT_SECRET\}/);
    assert.match(
      r.stderr,
      /Secrets are not exported: GITHUB_CLIENT_SECRET, GOOGLE_CLIENT_SECRET\. plan and apply keep/,
    );
    for (const s of SECRETS) assert.ok(!text.includes(s), 'no secret in the exported file');
    const other = { GITHUB_CLIENT_SECRET: newSecret('unused'), GOOGLE_CLIENT_SECRET: newSecret('unused') };
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', out], { env: other });
    assert.equal(plan.code, 0, plan.stdout);
    const apply = await nexus(b, ['apply', '-f', out, '--yes'], { env: other });
    assert.match(apply.stdout, /No changes/);
  });
});

describe('the full manifest: scopes, trusted issuers, aliases, agents, secret-store references, prune', () => {
  let b: Broker;
  const env = { GITHUB_CLIENT_SECRET: newSecret('gh') };
  const full = join(EXAMPLES, 'nexus.yaml');
  before(async () => {
    b = await startBroker();
    const put = await admin(b, 'POST', '/api/v2/secrets?user_id=ops', {
      name: 'slack-client-secret',
      value: newSecret('slack'),
    });
    assert.equal(put.status, 201);
  });
  after(() => b.stop());

  test('applies in dependency order and converges', async () => {
    const apply = await nexus(b, ['apply', '-f', full, '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    const order = [
      ...apply.stdout.matchAll(/✓ created (scope|trusted issuer|provider alias|provider|agent) /g),
    ].map((m) => m[1]);
    assert.deepEqual(order, [
      'scope',
      'scope',
      'trusted issuer',
      'provider',
      'provider',
      'provider alias',
      'agent',
    ]);
    assert.match(apply.stderr, /agent support-bot has no credential yet/);
    const slack = await admin(b, 'GET', '/providers/by-name/slack');
    assert.equal((await admin(b, 'GET', `/providers/${slack.body.id}`)).body.has_client_secret, true);
    assert.equal((await admin(b, 'GET', '/providers/by-name/gh')).status, 200, 'the alias resolves');
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', full], { env });
    assert.equal(plan.code, 0, plan.stdout);
  });

  test('objects the file does not list are deleted only with --prune', async () => {
    await admin(b, 'POST', '/admin/v1/scopes', { name: 'stray:scope' });
    await admin(b, 'POST', '/admin/v1/agents', {
      agent_id: 'stray-bot',
      allowed_scopes: [],
      generate_secret: false,
    });
    const plain = await nexus(b, ['plan', '--detailed-exitcode', '-f', full], { env });
    assert.equal(plain.code, 0, 'without --prune extra objects are left alone: orphans are not changes');
    assert.match(
      plain.stdout,
      /^! ORPHAN : stray-bot \(agent; would be deleted if --prune was passed\)\n! ORPHAN : stray:scope \(scope; would be deleted if --prune was passed\)$/m,
    );
    assert.doesNotMatch(plain.stdout, /- delete/);
    const json = JSON.parse((await nexus(b, ['plan', '-f', full, '--json'], { env })).stdout);
    assert.deepEqual(json.orphans, [
      { kind: 'agent', name: 'stray-bot' },
      { kind: 'scope', name: 'stray:scope' },
    ]);
    const noPrune = await nexus(b, ['apply', '-f', full, '--yes'], { env });
    assert.match(noPrune.stdout, /! ORPHAN : stray-bot [\s\S]*No changes/);
    assert.equal((await admin(b, 'GET', '/admin/v1/agents/stray-bot')).status, 200, 'apply kept it');
    const prune = await nexus(b, ['plan', '--detailed-exitcode', '-f', full, '--prune'], { env });
    assert.equal(prune.code, 2);
    assert.match(prune.stdout, /- delete agent stray-bot[\s\S]*- delete scope stray:scope/);
    assert.doesNotMatch(prune.stdout, /ORPHAN/, 'with --prune they are deletions, not orphans');
    const apply = await nexus(b, ['apply', '-f', full, '--prune', '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    assert.equal((await nexus(b, ['plan', '--detailed-exitcode', '-f', full, '--prune'], { env })).code, 0);
    assert.equal((await admin(b, 'GET', '/admin/v1/agents/stray-bot')).status, 404);
  });

  test('--prune touches only the kinds the file has a section for', async () => {
    const onlyScopes = write(
      'only-scopes.yaml',
      'scopes:\n  - name: crm:read\n    description: Read the CRM\n  - name: crm:write\n    description: Change CRM records\n',
    );
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', onlyScopes, '--prune']);
    assert.equal(plan.code, 0, plan.stdout);
  });

  test('a stale update is refused with 409 (If-Match with the version read by plan)', async () => {
    // The CLI sends If-Match "<version read during plan>": reproduce the race by hand.
    const { body } = await admin(b, 'GET', '/providers/by-name/github');
    const view = await admin(b, 'GET', `/providers/${body.id}`);
    const stale = String(view.body.version);
    await admin(b, 'PATCH', `/providers/${body.id}`, { profile: { description: 'someone else' } });
    const refused = await admin(
      b,
      'PATCH',
      `/providers/${body.id}`,
      { profile: { description: 'me' } },
      { 'if-match': `"${stale}"` },
    );
    assert.equal(refused.status, 409);
    assert.equal((await nexus(b, ['apply', '-f', full, '--yes'], { env })).code, 0);
  });

  test('a failure stops apply and lists done / failed / not done (no rollback)', async () => {
    const path = write(
      'failing.yaml',
      `providers:
  - name: aaa-ok
    auth_type: api_key
agents:
  - agent_id: bad-bot
    allowed_providers: [no-such-provider]
  - agent_id: zzz-bot
`,
    );
    const r = await nexus(b, ['apply', '-f', path, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /✓ created provider aaa-ok/);
    assert.match(r.stderr, /✗ failed to create agent bad-bot: .*no-such-provider/);
    assert.match(r.stderr, /Nothing was rolled back: 1 done, 1 failed, 1 not done/);
    assert.match(r.stderr, / {2}not done {2}create agent zzz-bot/);
    const json = await nexus(b, ['apply', '-f', path, '--yes', '--json']);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(
      parsed.items.map((i: { name: string; status: string }) => `${i.name}:${i.status}`),
      ['bad-bot:failed', 'zzz-bot:not_done'],
    );
  });

  test('--json output parses and has a stable shape', async () => {
    const shapes: Record<string, string[]> = {};
    const run = async (name: string, args: string[]) => {
      const r = await nexus(b, [...args, '--json'], { env });
      assert.ok(r.code === 0 || r.code === 2, `${name}: ${r.stderr}`);
      shapes[name] = keys(JSON.parse(r.stdout));
    };
    await run('plan', ['plan', '--detailed-exitcode', '-f', full]);
    await run('providers list', ['providers', 'list']);
    await run('providers get', ['providers', 'get', 'github']);
    await run('agents list', ['agents', 'list']);
    await run('scopes list', ['scopes', 'list']);
    await run('trusted-issuers list', ['trusted-issuers', 'list']);
    await run('audit list', ['audit', 'list', '--limit', '2']);
    await run('secrets list', ['secrets', 'list', '--user', 'ops']);
    const snapshot = {
      plan: [
        '.changes',
        '.changes[].action',
        '.changes[].fields',
        '.changes[].kind',
        '.changes[].name',
        '.orphans',
        '.orphans[].kind',
        '.orphans[].name',
        // Providers made from an older catalogue entry (always present, like orphans; empty here).
        '.outdated',
        '.summary',
        '.summary.create',
        '.summary.delete',
        '.summary.unchanged',
        '.summary.update',
      ],
      'providers list': [
        '[].aliases',
        '[].api_base_url',
        '[].auth_header',
        '[].auth_type',
        '[].auth_url',
        '[].category',
        '[].client_id',
        '[].created_at',
        '[].description',
        '[].enable_discovery',
        '[].has_client_secret',
        '[].id',
        '[].issuer',
        '[].name',
        '[].params',
        '[].scopes',
        '[].token_url',
        '[].updated_at',
        '[].user_info_endpoint',
        '[].version',
      ],
      'providers get': [
        '.aliases',
        '.api_base_url',
        '.auth_header',
        '.auth_type',
        '.auth_url',
        '.category',
        '.client_id',
        '.created_at',
        '.description',
        '.enable_discovery',
        '.has_client_secret',
        '.id',
        '.issuer',
        '.name',
        '.params',
        '.scopes',
        '.token_url',
        '.updated_at',
        '.user_info_endpoint',
        '.version',
      ],
      'agents list': [
        '[].active',
        '[].agent_id',
        '[].allowed_providers',
        '[].allowed_scopes',
        '[].allowed_secrets',
        '[].allowed_workspaces',
        '[].created_at',
        '[].description',
        '[].has_jwks',
        '[].id',
        '[].jwks',
        '[].jwks_uri',
        '[].secrets',
        '[].updated_at',
        '[].version',
      ],
      'scopes list': ['[].description', '[].name'],
      'trusted-issuers list': [
        '[].algorithms',
        '[].audience',
        '[].clearance_claim',
        '[].created_at',
        '[].enable_discovery',
        '[].id',
        '[].issuer',
        '[].jwks_uri',
        '[].permissions_claim',
        '[].tenant_claim',
        '[].updated_at',
        '[].use_discovery',
        '[].user_id_claim',
        '[].version',
      ],
      'audit list': [
        '.events',
        '.events[].actor',
        '.events[].details',
        '.events[].event_type',
        '.events[].id',
        '.events[].ip',
        '.events[].occurred_at',
        '.events[].outcome',
        '.events[].request_id',
        '.events[].resource_id',
        '.events[].resource_type',
        '.events[].seq',
        '.events[].user_agent',
        '.next_cursor',
      ],
      'secrets list': [
        '[].created_at',
        '[].current_version',
        '[].deleted',
        '[].description',
        '[].enabled',
        '[].name',
        '[].updated_at',
        '[].zone',
      ],
    };
    if (process.env.PRINT_SHAPES) console.log(JSON.stringify(shapes));
    for (const [name, expected] of Object.entries(snapshot)) assert.deepEqual(shapes[name], expected, name);
  });

  test('listing, getting, deleting with confirmation, audit tail, YAML output', async () => {
    const list = await nexus(b, ['providers', 'list']);
    assert.match(list.stdout, /^NAME +AUTH TYPE/m);
    const yaml = await nexus(b, ['agents', 'get', 'support-bot', '-o', 'yaml']);
    assert.match(yaml.stdout, /^agent_id: support-bot$/m);
    const refuse = await nexus(b, ['providers', 'delete', 'aaa-ok']);
    assert.equal(refuse.code, 1);
    assert.match(refuse.stderr, /Refusing to ask without a terminal: pass --yes/);
    const del = await nexus(b, ['providers', 'delete', 'aaa-ok', '--yes']);
    assert.equal(del.code, 0, del.stderr);
    const tail = await nexus(b, ['audit', 'tail', '--limit', '3']);
    assert.equal(tail.code, 0);
    assert.match(tail.stdout, /provider\.deleted/);
    const events = (await nexus(b, ['audit', 'tail', '--limit', '3', '--json'])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(events.length, 3);
    assert.ok(events[0].seq < events[2].seq, 'tail prints oldest first');
    const secrets = await nexus(b, ['secrets', 'get', 'slack-client-secret', '--user', 'ops']);
    assert.equal(secrets.code, 0);
    assert.match(secrets.stdout, /current_version +1/);
  });

  test('connections list filters by status, user and provider, as a table or JSON', async () => {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${b.url}${path}`, {
        method,
        headers: { 'x-api-key': b.apiKey, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    await api('POST', '/providers', { profile: { name: 'listed-crm', auth_type: 'api_key' } });
    const started = (await (
      await api('POST', '/v1/request-connection', {
        user_id: 'lister',
        provider_name: 'listed-crm',
        return_url: 'http://localhost:3000/done',
      })
    ).json()) as { connection_id: string };
    const pending = await nexus(b, ['connections', 'list', 'listed-crm', '--status', 'pending', '--json']);
    assert.equal(pending.code, 0, pending.stderr);
    const rows = JSON.parse(pending.stdout) as { id: string; workspace_id: string; status: string }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.workspace_id, r.status]),
      [[started.connection_id, 'lister', 'pending']],
    );
    const none = await nexus(b, ['connections', 'list', '--status', 'attention_required', '--json']);
    assert.deepEqual(JSON.parse(none.stdout), []);
    const people = await nexus(b, ['connections', 'list', '--user', 'lister']);
    assert.equal(people.code, 0);
    assert.match(people.stdout, /WORKSPACE +PROVIDER +STATUS/);
    assert.match(people.stdout, new RegExp(`${started.connection_id} +lister +listed-crm +pending`));
  });

  test('doctor --remote checks a running broker; a bad key fails it', async () => {
    const ok = await nexus(b, ['doctor', '--remote', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const checks = JSON.parse(ok.stdout) as { status: string; check: string }[];
    assert.deepEqual(
      checks.map((c) => [c.check, c.status]).filter(([, s]) => s !== 'ok'),
      [],
      'every check passes against a healthy local broker',
    );
    assert.deepEqual(
      checks.map((c) => c.check),
      ['reachable', 'tls', 'clock', 'ready', 'api key', 'api document'],
    );
    const bad = await nexus(b, ['doctor', '--remote'], {
      env: { API_KEY: 'nxa_wrong_key_for_doctor_test_000000' },
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /FAIL +api key +refused/);
    const down = await nexus(b, ['doctor', '--remote', '--url', 'http://127.0.0.1:9']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /FAIL +reachable/);
  });

  test('sessions get and close an agent session', async () => {
    assert.equal((await admin(b, 'POST', '/admin/v1/scopes', { name: 'reports:read' })).status, 201);
    const agent = await admin(b, 'POST', '/admin/v1/agents', {
      agent_id: 'cli-session-bot',
      allowed_scopes: ['reports:read'],
    });
    assert.equal(agent.status, 201);
    const login = await fetch(`${b.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'cli-session-bot',
        client_secret: String(agent.body.client_secret),
      }),
    });
    const { access_token } = (await login.json()) as { access_token: string };
    const opened = await fetch(`${b.url}/v1/agent-sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scopes: ['reports:read'] }),
    });
    assert.equal(opened.status, 201, await opened.clone().text());
    const { session_id } = (await opened.json()) as { session_id: string };

    const shown = await nexus(b, ['sessions', 'get', session_id, '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    const session = JSON.parse(shown.stdout) as { session_id: string; scopes_granted: string[] };
    assert.equal(session.session_id, session_id);
    assert.deepEqual(session.scopes_granted, ['reports:read']);
    assert.ok(!shown.stdout.includes(access_token), 'no token in the output');

    const refused = await nexus(b, ['sessions', 'close', session_id]);
    assert.equal(refused.code, 1, 'no terminal, no --yes: nothing closed');
    const closed = await nexus(b, ['sessions', 'close', session_id, '--yes']);
    assert.equal(closed.code, 0, closed.stderr);
    const after = await fetch(`${b.url}/v1/agent-sessions/${session_id}`, {
      headers: { authorization: `Bearer ${access_token}` },
    });
    const state = (await after.json()) as Record<string, unknown>;
    assert.ok(
      after.status === 404 || state.active === false || state.status === 'closed',
      JSON.stringify(state),
    );
  });

  test('login stores a profile readable only by the user; --profile uses it', async () => {
    const login = await nexus(b, ['login', '--url', b.url, '--profile', 'ci'], {
      env: { NEXUS_URL: '', API_KEY: '' },
      input: b.apiKey,
    });
    assert.equal(login.code, 0, login.stderr);
    const path = join(b.dir, 'config', 'nexus', 'config.json');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const r = await nexus(b, ['--profile', 'ci', 'scopes', 'list', '--json'], {
      env: { NEXUS_URL: '', API_KEY: '' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Array.isArray(JSON.parse(r.stdout)));
    const original = await nexus(b, ['scopes', 'list'], {
      env: { API_KEY: '', NEXUS_API_KEY: b.apiKey, NEXUS_URL: '', BROKER_BASE_URL: b.url },
    });
    assert.equal(original.code, 0, 'NEXUS_API_KEY and the original BROKER_BASE_URL work too');
    const bad = await nexus(b, ['login', '--url', b.url], {
      env: { NEXUS_URL: '', API_KEY: '' },
      input: 'not-the-key',
    });
    assert.equal(bad.code, 1);
  });
});

test('no secret value used by this file appeared in any output', () => {
  assert.ok(SECRETS.size >= 6);
  assert.ok(transcript.length > 20);
  for (const text of transcript) for (const s of SECRETS) assert.ok(!text.includes(s), 'secret in output');
});
