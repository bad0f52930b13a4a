import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { proxyEnvSchema } from '../cli/commands/proxy.ts';
import {
  ORIGINAL_ONLY,
  originalVariableWarnings,
  renderOriginalVariables,
  SHARED,
} from './original-variables.ts';
import { envSchema } from './schema.ts';

const readByServe = new Set(Object.keys(envSchema.shape));
const readByProxy = new Set(Object.keys(proxyEnvSchema.shape));

describe("the original Nexus's variables", () => {
  it('warns only about variables Nexus does not read, and documents the ones it reads', () => {
    for (const { name } of ORIGINAL_ONLY) {
      assert.ok(!readByServe.has(name), `${name} is read by nexus serve: it must not warn`);
      assert.ok(!readByProxy.has(name), `${name} is read by nexus proxy: it must not warn`);
    }
    for (const { name, readByNexus } of SHARED) {
      assert.ok((readByNexus === 'serve' ? readByServe : readByProxy).has(name), `${name}: not read`);
    }
    const names = [...ORIGINAL_ONLY, ...SHARED].map((v) => v.name);
    assert.equal(new Set(names).size, names.length, 'each variable once');
  });

  it('names the variable and its replacement, never the value', () => {
    const planted = {
      REQUIRE_API_KEY: 'true',
      ENFORCE_RETURN_URL: 'true',
      PORT_GRPC: 'planted-port-9090',
      BROKER_API_KEY: 'planted-broker-api-key-5f2b9c',
      DB_SSLROOTCERT: '/planted/ca-bundle.pem',
      REQUIRE_ALLOWLIST: '',
      // Read by Nexus under the same name: never a warning.
      API_KEY: 'planted-admin-key-0123456789abcdef',
      PORT: '8080',
      NEXUS_ROUTES: 'github=https://api.github.com',
    };
    const warnings = originalVariableWarnings(planted);
    assert.deepEqual(
      warnings.map((w) => w.variable),
      ['REQUIRE_API_KEY', 'ENFORCE_RETURN_URL', 'DB_SSLROOTCERT', 'BROKER_API_KEY', 'PORT_GRPC'],
      'in table order; an empty value counts as unset',
    );
    const byName = Object.fromEntries(warnings.map((w) => [w.variable, w]));
    assert.match(byName.PORT_GRPC!.message, /^PORT_GRPC is a setting of the original Nexus/);
    assert.equal(byName.PORT_GRPC!.nexus, 'GRPC_PORT');
    assert.match(byName.PORT_GRPC!.message, /GRPC_PORT=9090/);
    assert.match(byName.ENFORCE_RETURN_URL!.message, /ALLOWED_RETURN_DOMAINS/);
    assert.match(byName.REQUIRE_API_KEY!.message, /nexus admin-keys create/);
    assert.match(byName.BROKER_API_KEY!.message, /agent token/);
    assert.match(byName.DB_SSLROOTCERT!.nexus, /sslrootcert in DATABASE_URL/);
    const printed = JSON.stringify(warnings);
    for (const value of Object.values(planted).filter((v) => v.length > 8))
      assert.ok(!printed.includes(value), `a value was printed: ${value}`);
  });

  it('renders both tables with every variable', () => {
    const markdown = renderOriginalVariables();
    for (const { name } of [...ORIGINAL_ONLY, ...SHARED])
      assert.ok(markdown.includes(`| \`${name}\` `), name);
  });
});
