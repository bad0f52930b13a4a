/**
 * TOKEN_STORE=secret-backend with AWS Secrets Manager (moto in server mode, a real emulator; run
 * by `npm run test:backends`): connection credentials go to
 * `<AWS_SECRET_PREFIX>/connections/<id>/<write id>` through the official SDK, a new secret per
 * write whose predecessor is deleted once the row points at it, the row keeps the marker, and tokens, refresh and revocation work
 * against a real OpenID provider. Without NEXUS_TEST_MOTO_URL the file fails instead of skipping.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { open } from '../src/crypto/envelope.ts';
import { credentialsBinding } from '../src/modules/connections/connections.service.ts';
import { backendPath, isBackendMarker } from '../src/modules/connections/credential-store.ts';
import { Scenario } from './oauth-scenario.ts';

const MOTO = process.env.NEXUS_TEST_MOTO_URL;
if (MOTO === undefined)
  throw new Error(
    'NEXUS_TEST_MOTO_URL is not set: run `npm run test:backends` (scripts/services.sh run-with-moto)',
  );

// The SDK's default credential chain reads these; moto accepts any key.
process.env.AWS_ACCESS_KEY_ID ??= 'testing';
process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';

describe('TOKEN_STORE=secret-backend on AWS Secrets Manager (moto)', { timeout: 120_000 }, () => {
  const prefix = `nexus-test-${randomBytes(4).toString('hex')}/tokens`;
  const s = new Scenario();
  const aws = new SecretsManagerClient({
    region: 'us-east-1',
    endpoint: MOTO,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  before(() =>
    s.start({
      env: {
        TOKEN_STORE: 'secret-backend',
        SECRET_BACKEND: 'aws-secrets-manager',
        AWS_REGION: 'us-east-1',
        AWS_SECRET_PREFIX: prefix,
        AWS_ENDPOINT_URL_SECRETS_MANAGER: MOTO,
      },
    }),
  );
  after(async () => {
    aws.destroy();
    await s.close();
  });

  /** The secret as AWS holds it, read with the SDK directly (not through the broker). */
  async function inAws(
    id: string,
    path: string,
  ): Promise<{ access_token: string; refresh_token?: string } | null> {
    try {
      const out = await aws.send(new GetSecretValueCommand({ SecretId: `${prefix}/${path}` }));
      const bytes = out.SecretBinary!;
      return JSON.parse(
        new TextDecoder().decode(open(s.broker.container.keys.ring, bytes, credentialsBinding(id))),
      );
    } catch (error) {
      if ((error as { name?: string }).name === 'ResourceNotFoundException') return null;
      throw error;
    }
  }

  it('consent, token reads, refresh and revocation keep the tokens in AWS only', async () => {
    const id = await s.connect('idp-discovered');
    /** The path the row names. */
    const pathOfRow = async () => {
      const row = await s.broker.container.connectionsStore.find(id);
      assert.ok(isBackendMarker(row!.credentials), 'the row keeps the marker');
      return backendPath(id, row!.credentials!);
    };
    const firstPath = await pathOfRow();
    const first = await inAws(id, firstPath);
    assert.ok(first?.refresh_token);
    assert.equal((await s.token(id)).access_token, first.access_token);

    s.clock += 2 * 3600_000;
    const refreshed = await s.token(id);
    const secondPath = await pathOfRow();
    assert.notEqual(secondPath, firstPath, 'the refresh wrote a secret of its own');
    const second = await inAws(id, secondPath);
    assert.ok(second !== null);
    assert.notEqual(second.access_token, first.access_token);
    assert.equal(refreshed.access_token, second.access_token);
    assert.equal(await inAws(id, firstPath), null, 'and deleted the one the row pointed at before');

    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
    assert.equal(await inAws(id, secondPath), null, 'revocation deleted the secret');
  });
});
