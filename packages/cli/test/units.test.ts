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
