// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * Issue #24: `nexus export > nexus.yaml; nexus plan -f nexus.yaml` must exit 0 without the secret
 * variables the export names. A client secret is write-only, so an unset variable means "keep the
 * stored secret"; where nothing is stored (a new provider) plan and apply refuse, naming the
 * variable at its line. validate, which has no broker to ask, names every unset variable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, newSecret, nexus, SECRETS, startBroker, transcript } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-unset-'));

async function hasSecret(b: Broker, name: string): Promise<boolean | undefined> {
  const headers = { 'x-api-key': b.apiKey };
  const found = await fetch(`${b.url}/providers/by-name/${name}`, { headers });
  if (found.status !== 200) return undefined;
  const { id } = (await found.json()) as { id: string };
  const view = (await (await fetch(`${b.url}/providers/${id}`, { headers })).json()) as {
    has_client_secret: boolean;
  };
  return view.has_client_secret;
}

describe('an unset client_secret variable (issue #24)', () => {
  let b: Broker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.stop());

  test('export then plan without the variables: exit 0, the stored secret kept', async () => {
    const secret = newSecret('gh');
    const file = join(dir, 'github.yaml');
    writeFileSync(
      file,
      'providers:\n  - name: github\n    client_id: abc\n    client_secret: ${GITHUB_CLIENT_SECRET}\n' +
        '    auth_url: https://github.com/login/oauth/authorize\n' +
        '    token_url: https://github.com/login/oauth/access_token\n' +
        '    api_base_url: https://api.github.com\n    scopes: [repo]\n',
    );
    const created = await nexus(b, ['apply', '-f', file, '--yes'], { env: { GITHUB_CLIENT_SECRET: secret } });
    assert.equal(created.code, 0, created.stderr);

    const exported = await nexus(b, ['export', '--out', join(dir, 'nexus.yaml')]);
    assert.equal(exported.code, 0, exported.stderr);
    const plan = await nexus(b, ['plan', '-f', join(dir, 'nexus.yaml'), '--detailed-exitcode']);
    assert.equal(plan.code, 0, `${plan.stdout}\n${plan.stderr}`);
    assert.match(
      plan.stdout,
      /= unchanged provider github\n\s+client_secret: kept \(GITHUB_CLIENT_SECRET not set\)/,
    );
    assert.match(plan.stdout, /No changes\./);

    // A change of another field applies without the secret, and leaves the stored one in place.
    writeFileSync(file, `${readFileSync(file, 'utf8')}    description: renamed\n`);
    const apply = await nexus(b, ['apply', '-f', file, '--yes']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /client_secret: kept \(GITHUB_CLIENT_SECRET not set\)/);
    assert.match(apply.stdout, /updated provider github/);
    assert.equal(await hasSecret(b, 'github'), true);

    // --update-secrets must send every secret: unset, that is an error at its line.
    const forced = await nexus(b, ['plan', '-f', file, '--update-secrets']);
    assert.equal(forced.code, 1);
    assert.match(
      forced.stderr,
      /github\.yaml:4:20: environment variable GITHUB_CLIENT_SECRET is not set: --update-secrets sends every client_secret/,
    );
  });

  test('a new provider with an unset variable: plan and apply fail at its line, nothing created', async () => {
    const file = join(dir, 'new.yaml');
    writeFileSync(
      file,
      'providers:\n  - name: fresh\n    client_id: abc\n    client_secret: ${FRESH_CLIENT_SECRET}\n' +
        '    auth_url: https://fresh.example/authorize\n    token_url: https://fresh.example/token\n',
    );
    for (const args of [['plan'], ['apply', '--yes']]) {
      const r = await nexus(b, [...args, '-f', file]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stderr,
        /new\.yaml:4:20: environment variable FRESH_CLIENT_SECRET is not set: provider fresh is new, so there is no stored client_secret to keep/,
      );
    }
    assert.equal(await hasSecret(b, 'fresh'), undefined, 'nothing was created');
    const validate = await nexus(b, ['validate', '-f', file]);
    assert.equal(validate.code, 1);
    assert.match(validate.stderr, /new\.yaml:4:20: environment variable FRESH_CLIENT_SECRET is not set$/m);
  });

  test('no secret value in any output', () => {
    for (const s of SECRETS) for (const t of transcript) assert.ok(!t.includes(s));
  });
});
