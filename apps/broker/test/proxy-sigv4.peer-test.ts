/**
 * The credential proxy's `aws_sigv4` strategy against a real signature check: moto (server mode,
 * PyPI) with IAM enforced, which recomputes every request's signature with the secret of the access
 * key and refuses a mismatch. The test starts its own moto from the venv `scripts/services.sh
 * ensure-moto` installs, with three unauthenticated calls allowed (to create an IAM user, its
 * policy and its access key), then everything checked. Runs in `npm run test:backends`; without
 * moto installed it fails instead of skipping.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signSigV4 } from '../src/modules/strategies/sigv4.ts';
import { freePort, REPO_ROOT } from './cli-helpers.ts';
import { json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

const MOTO_SERVER = join(REPO_ROOT, '.test-services/moto/bin/moto_server');
if (!existsSync(MOTO_SERVER))
  throw new Error(
    `${MOTO_SERVER} is missing: run \`npm run test:backends\` (scripts/services.sh ensure-moto)`,
  );

describe('credential proxy: aws_sigv4 verified by moto with IAM enforced', { timeout: 120_000 }, () => {
  const s = new Scenario();
  let moto: ChildProcess;
  let motoUrl: string;
  let brokerUrl: string;
  const connections: Record<'good' | 'forged', string> = { good: '', forged: '' };

  /** An IAM query-API call; inside moto's unauthenticated window the signature is not checked. */
  async function iam(params: Record<string, string>): Promise<string> {
    const url = new URL(`${motoUrl}/`);
    const body = new URLSearchParams({ ...params, Version: '2010-05-08' }).toString();
    const headers = await signSigV4(
      { type: 'aws_sigv4', config: { service: 'iam', region: 'us-east-1' } },
      { access_key: 'AKIAUNCHECKED0000000', secret_key: 'unchecked' },
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(body),
      },
    );
    const res = await fetch(url, { method: 'POST', headers, body });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return text;
  }

  async function capture(workspace: string, credentials: Record<string, string>): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: workspace, provider_name: 'aws-sm', return_url: RETURN },
        },
        200,
      ),
    );
    await s.call(
      {
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials },
      },
      200,
    );
    return started.connection_id;
  }

  before(async () => {
    const port = await freePort();
    motoUrl = `http://127.0.0.1:${port}`;
    moto = spawn(MOTO_SERVER, ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: '3' },
      stdio: 'ignore',
    });
    for (let i = 0; ; i++) {
      const up = await fetch(`${motoUrl}/moto-api/`).then(
        () => true,
        () => false,
      );
      if (up) break;
      if (i > 150) throw new Error('moto did not start');
      await new Promise((done) => setTimeout(done, 100));
    }
    await iam({ Action: 'CreateUser', UserName: 'proxy-user' });
    await iam({
      Action: 'PutUserPolicy',
      UserName: 'proxy-user',
      PolicyName: 'secrets',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'secretsmanager:*', Resource: '*' }],
      }),
    });
    const created = await iam({ Action: 'CreateAccessKey', UserName: 'proxy-user' });
    const accessKey = /<AccessKeyId>([^<]+)</.exec(created)![1]!;
    const secretKey = /<SecretAccessKey>([^<]+)</.exec(created)![1]!;

    await s.start({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'aws-sm',
            auth_type: 'aws_sigv4',
            api_base_url: motoUrl,
            params: {
              auth_strategy: {
                type: 'aws_sigv4',
                config: { service: 'secretsmanager', region: 'us-east-1' },
              },
            },
          },
        },
      },
      201,
    );
    connections.good = await capture('good', { access_key: accessKey, secret_key: secretKey });
    connections.forged = await capture('forged', {
      access_key: accessKey,
      secret_key: `${secretKey.slice(0, -2)}xx`,
    });
    brokerUrl = await s.broker.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    moto?.kill();
    await s.close();
  });

  const call = (connection: string, target: string, body: unknown) =>
    fetch(`${brokerUrl}/proxy/aws-sm/`, {
      method: 'POST',
      headers: {
        'x-api-key': s.broker.adminKey,
        'x-nexus-connection-id': connection,
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `secretsmanager.${target}`,
      },
      body: JSON.stringify(body),
    });

  it('signs Secrets Manager calls moto accepts, and the agent never held the key', async () => {
    const created = await call(connections.good, 'CreateSecret', {
      Name: 'via-proxy',
      SecretString: 's3cr3t',
    });
    assert.equal(created.status, 200, await created.clone().text());
    const listed = await call(connections.good, 'ListSecrets', {});
    assert.equal(listed.status, 200);
    const names = ((await listed.json()) as { SecretList: { Name: string }[] }).SecretList.map((x) => x.Name);
    assert.deepEqual(names, ['via-proxy']);
    const read = await call(connections.good, 'GetSecretValue', { SecretId: 'via-proxy' });
    assert.equal(((await read.json()) as { SecretString: string }).SecretString, 's3cr3t');
  });

  it('a request signed with the wrong secret is refused by moto (the check is real)', async () => {
    const res = await call(connections.forged, 'ListSecrets', {});
    assert.equal(res.status, 403, await res.clone().text());
    assert.match(await res.text(), /SignatureDoesNotMatch|signature/i);
  });
});
