/**
 * The AWS Secrets Manager backend against moto (PyPI, server mode): a real emulator of the
 * Secrets Manager API, not a fake of ours. Run by `npm run test:backends`, which starts moto
 * through `scripts/services.sh run-with-moto`; not part of `npm test`. Without
 * NEXUS_TEST_MOTO_URL the file fails instead of skipping, so a missing peer is never silent.
 */
import { randomBytes } from 'node:crypto';
import { createAwsSecretsManagerBackend } from '../../src/modules/secrets/aws-secrets-manager.backend.ts';
import { secretBackendConformance } from './conformance.ts';

const MOTO = process.env.NEXUS_TEST_MOTO_URL;
const STRICT = process.env.NEXUS_TEST_MOTO_STRICT_URL;
if (MOTO === undefined || STRICT === undefined)
  throw new Error(
    'NEXUS_TEST_MOTO_URL is not set: run `npm run test:backends` (scripts/services.sh run-with-moto)',
  );

const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const backend = (endpoint: string, extra: { maxAttempts?: number } = {}) =>
  createAwsSecretsManagerBackend({
    region: 'us-east-1',
    prefix: `nexus-test-${randomBytes(4).toString('hex')}/providers`,
    endpoint,
    client: { credentials, ...extra },
  });

secretBackendConformance({
  name: 'aws-secrets-manager (moto, real emulator)',
  open: async () => backend(MOTO),
  unreachable: async () => backend('http://127.0.0.1:1', { maxAttempts: 1 }),
  // The strict moto checks every request against its IAM: the access key `testing` is unknown.
  denied: async () => backend(STRICT, { maxAttempts: 1 }),
});
