// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * The provider catalogue from the CLI (issue #20, decision 0015), end to end against a real broker
 * (SQLite, or PostgreSQL with NEXUS_TEST_DATABASE_URL): `nexus providers add KEY`, `template: KEY`
 * in a manifest (plan, apply, and a second plan that finds nothing to do), and `nexus plan` saying
 * when a provider was made from an older version of its entry. No secret value in any output.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Provider } from '../src/api.ts';
import type { Io } from '../src/io.ts';
import { makePlan } from '../src/plan.ts';
import { outdatedProviders } from '../src/plan-catalog.ts';
import { planJson, renderPlan } from '../src/render.ts';
import { type Broker, newSecret, nexus, startBroker } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-catalog-'));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

async function admin(b: Broker, method: string, path: string, body?: unknown) {
  const r = await fetch(`${b.url}${path}`, {
    method,
    headers: { 'x-api-key': b.apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const byName = async (b: Broker, name: string) => {
  const { body } = await admin(b, 'GET', `/providers/by-name/${name}`);
  return (await admin(b, 'GET', `/providers/${body.id}`)).body as unknown as Provider;
};

describe('the provider catalogue from the CLI', { timeout: 180_000 }, () => {
  let b: Broker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.stop());

  test('providers add KEY makes a provider from the entry, the secret read from a file and never printed', async () => {
    const secret = newSecret('google-secret');
    const file = write('google.secret', `${secret}\n`);
    const run = await nexus(b, [
      'providers',
      'add',
      'google',
      '--client-id',
      'cli-google',
      '--client-secret-file',
      file,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /created provider google \(.+\) from catalogue entry google version \d+/);
    assert.match(run.stderr, /redirect URI/);
    const p = await byName(b, 'google');
    assert.equal(p.client_id, 'cli-google');
    assert.equal(p.has_client_secret, true);
    assert.equal(p.params.access_type, 'offline');
    assert.equal((p.params.template as { key: string }).key, 'google');

    const named = await nexus(b, ['providers', 'add', 'cohere', '--name', 'cohere-team', '--json']);
    assert.equal(named.code, 0, named.stderr);
    const out = JSON.parse(named.stdout) as { name: string; auth_type: string; template: { key: string } };
    assert.equal(out.name, 'cohere-team');
    assert.equal(out.auth_type, 'api_key');
    assert.equal(out.template.key, 'cohere');

    const scoped = await nexus(
      b,
      [
        'providers',
        'add',
        'google',
        '--name',
        'google-mail',
        '--client-id',
        'x',
        '--client-secret-file',
        '-',
        '--scopes',
        'openid, https://www.googleapis.com/auth/gmail.readonly',
      ],
      { input: `${newSecret('mail-secret')}\n` },
    );
    assert.equal(scoped.code, 0, scoped.stderr);
    assert.deepEqual((await byName(b, 'google-mail')).scopes, [
      'openid',
      'https://www.googleapis.com/auth/gmail.readonly',
    ]);
  });

  test('providers add refuses an unknown key, a taken name, an unreadable secret file and a missing key', async () => {
    const unknown = await nexus(b, ['providers', 'add', 'no-such-api']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown_template|catalogue/);
    const file = write('again.secret', newSecret('again'));
    const taken = await nexus(b, [
      'providers',
      'add',
      'google',
      '--client-id',
      'x',
      '--client-secret-file',
      file,
    ]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /provider_name_taken|already/);
    const missing = await nexus(b, [
      'providers',
      'add',
      'google',
      '--name',
      'g2',
      '--client-secret-file',
      join(dir, 'nope'),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the client secret from .*nope: ENOENT/);
    const noKey = await nexus(b, ['providers', 'add']);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /give the catalogue key/);
    const help = await nexus(undefined, ['providers', '--help']);
    assert.match(help.stdout, /add KEY/);
    assert.match(help.stdout, /--client-secret-file FILE/);
    const completion = await nexus(undefined, ['completion', 'bash']);
    assert.match(completion.stdout, /--client-secret-file/);
    assert.match(completion.stdout, /list get delete add/);
  });

  test('template: KEY in a manifest: plan shows the expansion, apply writes it, the next plan has nothing to do', async () => {
    const env = { ZENDESK_SECRET: newSecret('zendesk') };
    const manifest = write(
      'templates.yaml',
      `providers:
  - name: zendesk-eu
    template: zendesk
    client_id: zd-client
    client_secret: \${ZENDESK_SECRET}
    description: Support desk (EU)
    params:
      locale: de
`,
    );
    const valid = await nexus(undefined, ['validate', '-f', manifest], { env });
    assert.equal(valid.code, 0, valid.stderr);
    const plan = await nexus(b, ['plan', '-f', manifest, '--detailed-exitcode'], { env });
    assert.equal(plan.code, 2, plan.stderr);
    assert.match(plan.stdout, /\+ create provider zendesk-eu/);
    assert.match(plan.stdout, /auth_url: .*\{subdomain\}\.zendesk\.com/);
    const apply = await nexus(b, ['apply', '-f', manifest, '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    const p = await byName(b, 'zendesk-eu');
    assert.equal(p.description, 'Support desk (EU)');
    assert.equal(p.params.locale, 'de');
    assert.ok(p.params.connection_parameters, 'the entry’s parameters');
    assert.equal((p.params.template as { key: string }).key, 'zendesk');
    assert.equal(p.has_client_secret, true);
    const again = await nexus(b, ['plan', '-f', manifest, '--detailed-exitcode'], { env });
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /= unchanged provider zendesk-eu/);

    const unknown = write(
      'unknown.yaml',
      'providers:\n  - name: x\n    template: no-such-api\n    client_id: a\n',
    );
    const refused = await nexus(b, ['plan', '-f', unknown]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /provider x: template no-such-api is not in the broker's provider catalogue/,
    );
    const badKey = write('bad-key.yaml', 'providers:\n  - name: x\n    template: Not_A_Key\n');
    assert.equal((await nexus(undefined, ['validate', '-f', badKey])).code, 1);
  });

  test('plan reports a provider made from an entry the catalogue no longer has, in text and JSON', async () => {
    const created = await admin(b, 'POST', '/providers', {
      profile: {
        name: 'retired',
        auth_type: 'api_key',
        params: { template: { key: 'retired-api', version: 3 } },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const manifest = write('empty.yaml', 'scopes: []\n');
    const plan = await nexus(b, ['plan', '-f', manifest]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(
      plan.stdout,
      /! OUTDATED : provider retired was made from catalogue entry retired-api version 3, which the catalogue no longer has/,
    );
    const json = await nexus(b, ['plan', '-f', manifest, '--json']);
    const outdated = (JSON.parse(json.stdout) as { outdated: unknown[] }).outdated;
    assert.deepEqual(outdated, [{ provider: 'retired', template: 'retired-api', version: 3, latest: null }]);
  });
});

describe('outdated providers in a plan', () => {
  const provider = (name: string, template: unknown) =>
    ({
      id: name,
      name,
      auth_type: 'oauth2',
      params: { template },
      aliases: [],
      version: 1,
    }) as unknown as Provider;
  const state = {
    scopes: [],
    issuers: [],
    agents: [],
    providers: [
      provider('google', { key: 'google', version: 1 }),
      provider('slack', { key: 'slack', version: 2 }),
      provider('hand-made', undefined),
    ],
    catalog: {
      versions: new Map([
        ['google', 2],
        ['slack', 2],
      ]),
      profiles: new Map(),
    },
  };

  test('lists each provider whose entry has a newer version, and nothing for the others', () => {
    assert.deepEqual(outdatedProviders(state), [{ name: 'google', key: 'google', version: 1, latest: 2 }]);
    assert.deepEqual(outdatedProviders({ ...state, catalog: undefined }), []);
  });

  test('says so in the plan, without counting it as a change', () => {
    const manifest = {
      file: 'x',
      sections: new Set<never>(),
      secretStore: undefined,
      scopes: [],
      issuers: [],
      providers: [],
      agents: [],
      warnings: [],
    };
    const plan = makePlan(manifest, state, { prune: false, updateSecrets: false });
    const lines: string[] = [];
    const io = { out: (s: string) => lines.push(s), err: () => {}, color: false } as unknown as Io;
    renderPlan(io, plan, 'http://broker');
    assert.ok(
      lines.includes(
        '! OUTDATED : provider google was made from catalogue entry google version 1; the catalogue has version 2 (a write with template: google applies it)',
      ),
      lines.join('\n'),
    );
    assert.match(lines.join('\n'), /Plan: 0 to create, 0 to update, 0 to delete, 0 unchanged\. No changes\./);
    assert.deepEqual((planJson(plan) as { outdated: unknown }).outdated, [
      { provider: 'google', template: 'google', version: 1, latest: 2 },
    ]);
  });
});
