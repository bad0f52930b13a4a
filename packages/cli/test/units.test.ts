// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/** Pieces of the CLI with no broker behind them: connection precedence, secret files, export names. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Provider } from '../src/api.ts';
import { resolveConnection, writeConfig } from '../src/connection.ts';
import { exportManifest } from '../src/export.ts';
import { writeSecretFile } from '../src/io.ts';
import { normalizeArgs } from '../src/main.ts';
import { parseManifest } from '../src/manifest.ts';
import { storedParams } from '../src/params.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-units-'));

test('NEXUS_API_KEY wins over the generic API_KEY; a profile key never goes to another URL', () => {
  const env = { XDG_CONFIG_HOME: join(dir, 'cfg'), HOME: dir } as NodeJS.ProcessEnv;
  const both = resolveConnection({ ...env, NEXUS_API_KEY: 'nexus-key', API_KEY: 'other-tool-key' }, {});
  assert.equal(both.apiKey, 'nexus-key');
  writeConfig(env, {
    default_profile: 'prod',
    profiles: { prod: { url: 'https://nexus.example.com', api_key: 'prod-key' } },
  });
  assert.equal(resolveConnection(env, {}).apiKey, 'prod-key');
  assert.throws(
    () => resolveConnection({ ...env, NEXUS_URL: 'https://elsewhere.example.com' }, {}),
    /not the one of profile "prod"/,
  );
  assert.equal(resolveConnection({ ...env, NEXUS_URL: 'https://nexus.example.com/' }, {}).apiKey, 'prod-key');
});

test('a secret file is 0600 from the start, even over an existing world-readable file or a symlink', () => {
  const path = join(dir, 'agent.secret');
  writeFileSync(path, 'old\n', { mode: 0o644 });
  writeSecretFile(path, 'nxs_new\n');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(readFileSync(path, 'utf8'), 'nxs_new\n');
  writeSecretFile(path, 'second\n', true);
  assert.equal(readFileSync(path, 'utf8'), 'nxs_new\nsecond\n', 'appends keep what was there');
  const target = join(dir, 'victim');
  writeFileSync(target, 'untouched');
  const link = join(dir, 'link.secret');
  symlinkSync(target, link);
  writeSecretFile(link, 'secret\n');
  assert.equal(readFileSync(target, 'utf8'), 'untouched', 'a symlink is replaced, not followed');
});

test('export gives two providers whose names map to one variable a variable each', () => {
  const provider = (name: string) =>
    ({
      id: name,
      name,
      auth_type: 'oauth2',
      client_id: 'c',
      has_client_secret: true,
      aliases: [],
      scopes: [],
      params: {},
    }) as unknown as Provider;
  const out = exportManifest({
    scopes: [],
    issuers: [],
    agents: [],
    providers: [provider('my-app'), provider('my_app')],
  });
  assert.deepEqual(out.variables, ['MY_APP_CLIENT_SECRET', 'MY_APP_2_CLIENT_SECRET']);
});

test('export writes $ that would read as a variable doubled, so the file reads back as exported', () => {
  const description = 'uses $HOME, ${PATH}, $$X, $5 and a$';
  const provider = {
    id: 'p',
    name: 'dollars',
    auth_type: 'api_key',
    has_client_secret: false,
    aliases: [],
    scopes: [],
    description,
    params: { pattern: '^[a-z]+$|$Y', $ref: '#/$defs/k' },
  } as unknown as Provider;
  const { yaml } = exportManifest({ scopes: [], issuers: [], agents: [], providers: [provider] });
  const back = parseManifest(yaml, 'export.yaml', { HOME: '/home/x', PATH: '/bin', X: 'x', Y: 'y' });
  assert.equal(back.providers[0]!.profile.description, description);
  assert.deepEqual(back.providers[0]!.profile.params, provider.params);
});

test('the Go and Terraform one-dash long options are read as their -- forms', () => {
  assert.deepEqual(normalizeArgs(['plan', '-file', 'a.yaml', '-prune', '-detailed-exitcode']), [
    'plan',
    '--file',
    'a.yaml',
    '--prune',
    '--detailed-exitcode',
  ]);
  assert.deepEqual(normalizeArgs(['apply', '-file=a.yaml', '-f', 'b', '--', '-prune']), [
    'apply',
    '--file=a.yaml',
    '-f',
    'b',
    '--',
    '-prune',
  ]);
});

test('plan compares params in the form the broker stores: flat strategy settings folded, the api_key default', () => {
  const header = (config: Record<string, string>) => ({ auth_strategy: { type: 'header', config } });
  // The original's flat form, folded as the broker does.
  assert.deepEqual(storedParams({ auth_type: 'query_param', params: { param_name: 'key', x: 'y' } }), {
    x: 'y',
    auth_strategy: { type: 'query_param', config: { param_name: 'key' } },
  });
  assert.deepEqual(
    storedParams({ auth_type: 'api_key', params: { header_name: 'X-Token' } }),
    header({ header_name: 'X-Token' }),
  );
  // An api_key provider that names no header: whichever default the broker holds, else X-API-Key.
  const current = (params: Record<string, unknown>) => ({ auth_type: 'api_key', params });
  const none = { auth_type: 'api_key', params: {} };
  assert.deepEqual(storedParams(none), {}, 'a new provider: the broker writes its default');
  assert.deepEqual(storedParams(none, current({})), {}, 'a row from before the default: left to the broker');
  assert.deepEqual(
    storedParams(none, current(header({ header_name: 'Authorization' }))),
    header({ header_name: 'Authorization' }),
    'a legacy row keeps its Authorization header',
  );
  assert.deepEqual(
    storedParams(none, current(header({ header_name: 'X-Custom' }))),
    header({ header_name: 'X-API-Key' }),
    'a header set elsewhere goes back to the default the file implies',
  );
  // What the broker refuses is left for it to refuse, and oauth2 params are never touched.
  const wrong = { auth_type: 'api_key', params: { param_name: 'k' } };
  assert.deepEqual(storedParams(wrong), { param_name: 'k' });
  assert.deepEqual(storedParams({ auth_type: 'oauth2', params: { header_name: 'x' } }), { header_name: 'x' });
});
