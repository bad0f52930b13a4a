import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredProfile } from './providers.schemas.ts';
import { type ValidationOptions, validateProfile } from './providers.validate.ts';
import { secretHostParameters } from './secret-hosts.ts';

/**
 * Security review (2026-12-07): `https://{domain}/oauth/token` with a `domain` pattern any host
 * matches let an agent name the server the broker sends the provider's client secret to.
 */
const production: ValidationOptions = { allowLoopbackHttp: false, hasClientSecret: true };
const ANY_HOST = '^[a-z0-9][a-z0-9-]{0,62}(\\.[a-z0-9][a-z0-9-]{0,62})+$';

const withDomain = (pattern: string, urls: Partial<StoredProfile> = {}): StoredProfile => ({
  name: 'p',
  auth_type: 'oauth2',
  auth_header: 'client_secret_post',
  client_id: 'c',
  auth_url: 'https://{domain}/authorize',
  token_url: 'https://{domain}/oauth/token',
  enable_discovery: false,
  scopes: [],
  params: { connection_parameters: { domain: { title: 'Domain', pattern, example: 'acme.okta.com' } } },
  ...urls,
});

describe('connection parameters that choose where the client secret goes', () => {
  it('finds a value that makes the token or revocation URL any host', () => {
    assert.deepEqual(secretHostParameters(withDomain(ANY_HOST)), [{ path: 'token_url', name: 'domain' }]);
    assert.deepEqual(
      secretHostParameters(
        withDomain('^[a-z0-9.-]+$', {
          token_url: 'https://login.example.com/token',
          params: {
            revocation_endpoint: 'https://{domain}/revoke',
            connection_parameters: { domain: { title: 'Domain', pattern: '^[a-z0-9.-]+$' } },
          },
        }),
      ),
      [{ path: 'params.revocation_endpoint', name: 'domain' }],
    );
    // A whole origin chosen by the requester.
    assert.deepEqual(
      secretHostParameters(
        withDomain('^https://.+$', {
          token_url: '{origin}/oauth/token',
          params: { connection_parameters: { origin: { title: 'Origin', pattern: '^https://.+$' } } },
        }),
      ),
      [{ path: 'token_url', name: 'origin' }],
    );
  });

  it("leaves alone a value followed by the provider's domain, a pinned pattern, and the other URLs", () => {
    const pinned = withDomain('^[a-z0-9][a-z0-9-]{0,62}\\.(okta|oktapreview|okta-emea)\\.com$');
    assert.deepEqual(secretHostParameters(pinned), []);
    const shopify = withDomain('^[a-z0-9.-]+$', {
      auth_url: 'https://{domain}.myshopify.com/admin/oauth/authorize',
      token_url: 'https://{domain}.myshopify.com/admin/oauth/access_token',
    });
    assert.deepEqual(secretHostParameters(shopify), [], 'the host stays under myshopify.com');
    const apiOnly = withDomain(ANY_HOST, {
      token_url: 'https://login.example.com/token',
      api_base_url: 'https://{domain}/api',
    });
    assert.deepEqual(secretHostParameters(apiOnly), [], 'no client secret goes to the API');
  });

  it('refuses such a provider at registration, naming the parameter and the fix', () => {
    const problems = validateProfile(withDomain(ANY_HOST), production);
    const problem = problems.find((p) => p.path === 'params.connection_parameters.domain.pattern');
    assert.ok(problem, JSON.stringify(problems));
    assert.match(problem.message, /fills the host of token_url, where the client secret is sent/);
    assert.match(problem.message, /pin it to the provider's domain/);
    assert.deepEqual(
      validateProfile(withDomain('^[a-z0-9][a-z0-9-]{0,62}\\.okta\\.com$'), production).filter((p) =>
        p.path.startsWith('params.connection_parameters'),
      ),
      [],
    );
  });
});
