// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * Issue #18 through the declarative CLI: a plan that changes where the broker sends a provider's
 * secrets (here `token_url`) says so; apply sends the client secret from the file with it (the
 * broker requires it), and without one in the file apply stops with a message that says what to do.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, newSecret, nexus, startBroker } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-destinations-'));
const manifest = (name: string, tokenUrl: string, withSecret: boolean) => {
  const path = join(dir, name);
  writeFileSync(
    path,
    `providers:
  - name: acme
    client_id: acme-client
${withSecret ? '    client_secret: ${ACME_CLIENT_SECRET}\n' : ''}    auth_url: https://login.acme.example/authorize
    token_url: ${tokenUrl}
    scopes: [read]
`,
  );
  return path;
};

async function admin(b: Broker, path: string) {
  const r = await fetch(`${b.url}${path}`, { headers: { 'x-api-key': b.apiKey } });
  return (await r.json()) as unknown;
}

describe('plan and apply when a change moves where secrets go', () => {
  let b: Broker;
  const env = { ACME_CLIENT_SECRET: newSecret('acme') };
  before(async () => {
    b = await startBroker();
    const first = await nexus(
      b,
      ['apply', '-f', manifest('v1.yaml', 'https://login.acme.example/token', true), '--yes'],
      {
        env,
      },
    );
    assert.equal(first.code, 0, first.stderr);
  });
  after(() => b.stop());

  test('the plan says so and shows the secret going with it; apply succeeds and the broker audits it', async () => {
    const file = manifest('v2.yaml', 'https://sso.acme.example/token', true);
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', file], { env });
    assert.equal(plan.code, 2, plan.stderr);
    assert.match(
      plan.stdout,
      /token_url: "https:\/\/login.acme.example\/token" → "https:\/\/sso.acme.example\/token"/,
    );
    assert.match(plan.stdout, /client_secret: \*\*\* → \*\*\*/, 'sent without --update-secrets');
    assert.match(
      plan.stdout,
      /token_url changes where the broker sends this provider's secrets: the client secret is sent/,
    );
    const apply = await nexus(b, ['apply', '-f', file, '--yes'], { env });
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /✓ updated provider acme/);
    const { id } = (await admin(b, '/providers/by-name/acme')) as { id: string };
    const view = (await admin(b, `/providers/${id}`)) as { token_url: string };
    assert.equal(view.token_url, 'https://sso.acme.example/token');
    const audit = JSON.stringify(await admin(b, '/audit?event_type=provider.destination_changed'));
    assert.match(audit, /"basis":"current_client_secret"/);
    // No change: the next plan has nothing to do, and sends no secret.
    const again = await nexus(b, ['plan', '--detailed-exitcode', '-f', file], { env });
    assert.equal(again.code, 0, again.stdout);
  });

  test('without a client secret in the file the plan warns and apply stops with what to do', async () => {
    const file = manifest('v3.yaml', 'https://elsewhere.example/token', false);
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', file]);
    assert.equal(plan.code, 2, plan.stderr);
    assert.match(plan.stdout, /requires the current client_secret with it, and this file has none/);
    const apply = await nexus(b, ['apply', '-f', file, '--yes']);
    assert.equal(apply.code, 1, apply.stdout);
    assert.match(
      apply.stderr,
      /✗ failed to update provider acme: provider acme: changing token_url moves where the broker sends its secrets, so the broker needs the provider's current client_secret in the same request; give it in the file .* Nothing was written for it\. \[400 provider_secret_required\]/,
    );
    const { id } = (await admin(b, '/providers/by-name/acme')) as { id: string };
    const view = (await admin(b, `/providers/${id}`)) as { token_url: string };
    assert.equal(view.token_url, 'https://sso.acme.example/token', 'unchanged');
  });
});
