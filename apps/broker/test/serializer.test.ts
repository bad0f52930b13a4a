/**
 * The compiled response serializer (src/http/serializer.ts) must send exactly what zod's would:
 * the same JSON for every answer it accepts, and a refusal (a 500, never a leak) for every answer
 * zod refuses. Both are run on the same inputs, including fields a schema does not list.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { createSerializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { installErrorHandling } from '../src/http/error-handler.ts';
import { isCompiled, serializerCompiler } from '../src/http/serializer.ts';
import { tokenResponse } from '../src/modules/connections/token-view.ts';

const zodSerializer = createSerializerCompiler({});
const route = (schema: z.ZodType) => ({ schema, method: 'GET', url: '/x', httpStatus: '200' });

/** What each serializer answers: the JSON text, or 'refused'. */
function both(schema: z.ZodType, data: unknown) {
  const run = (serialize: (d: unknown) => string) => {
    try {
      return serialize(data);
    } catch (error) {
      assert.equal((error as { code?: string }).code, 'FST_ERR_RESPONSE_SERIALIZATION');
      return 'refused';
    }
  };
  return {
    ours: run(serializerCompiler(route(schema) as never) as (d: unknown) => string),
    zods: run(zodSerializer(route(schema) as never) as (d: unknown) => string),
  };
}

const oauthAnswer = {
  connection_id: 'c1',
  provider_id: 'p1',
  provider_name: 'github',
  strategy: { type: 'oauth2', config: {} },
  credentials: { access_token: 'at', token_type: 'Bearer' },
  expires_at: '2026-12-06T10:00:00.000Z',
  access_token: 'at',
  token_type: 'Bearer',
  expiry: '2026-12-06T10:00:00.000Z',
};

describe('compiled response serializer', () => {
  it('compiles the token answer and sends what zod sends, dropping fields the schema does not list', () => {
    assert.equal(isCompiled(tokenResponse), true);
    const cases: unknown[] = [
      oauthAnswer,
      { ...oauthAnswer, refresh_token: 'rt-must-not-leave', connection_config: { tenant: 'acme' } },
      { ...oauthAnswer, strategy: { type: 'header', config: { header_name: 'X-Key' }, secret: 'no' } },
      { ...oauthAnswer, access_token: undefined, token_type: undefined, expiry: null, expires_at: null },
    ];
    for (const data of cases) {
      const { ours, zods } = both(tokenResponse, data);
      assert.notEqual(ours, 'refused');
      assert.equal(ours, zods);
      assert.doesNotMatch(ours, /rt-must-not-leave|"secret"/);
    }
  });

  it('refuses every answer zod refuses: wrong types, missing fields, unknown enum values, non-objects', () => {
    const bad: unknown[] = [
      { ...oauthAnswer, credentials: { access_token: 42 } },
      { ...oauthAnswer, strategy: { type: 'magic', config: {} } },
      { ...oauthAnswer, expires_at: undefined },
      { ...oauthAnswer, provider_name: null },
      { ...oauthAnswer, credentials: ['at'] },
      { ...oauthAnswer, connection_config: null },
      'a string',
      null,
    ];
    for (const data of bad) assert.deepEqual(both(tokenResponse, data), { ours: 'refused', zods: 'refused' });
  });

  it('agrees with zod on the other plain parts: numbers, booleans, literals, arrays, strict objects', () => {
    const schema = z.object({
      n: z.number(),
      b: z.boolean(),
      l: z.literal('ok'),
      list: z.array(z.object({ id: z.string() })),
      inner: z.object({ a: z.string().nullable() }).strict(),
    });
    assert.equal(isCompiled(schema), true);
    const good = { n: 1.5, b: false, l: 'ok', list: [{ id: 'x', extra: 1 }], inner: { a: null } };
    const { ours, zods } = both(schema, good);
    assert.equal(ours, zods);
    for (const data of [
      { ...good, n: Number.NaN },
      { ...good, n: Number.POSITIVE_INFINITY },
      { ...good, n: '1' },
      { ...good, b: 'false' },
      { ...good, l: 'no' },
      { ...good, list: [{ id: 1 }] },
      { ...good, inner: { a: null, extra: 'x' } },
    ])
      assert.deepEqual(both(schema, data), { ours: 'refused', zods: 'refused' });
  });

  it('leaves to zod the schemas with checks, formats, unions, defaults or transforms', () => {
    for (const schema of [
      z.object({ a: z.string().max(3) }),
      z.object({ a: z.iso.datetime() }),
      z.object({ a: z.union([z.string(), z.number()]) }),
      z.object({ a: z.string().default('x') }),
      z.object({ a: z.number().int() }),
      z.object({ a: z.string() }).refine(() => true),
      z.object({ a: z.string() }).loose(),
    ])
      assert.equal(isCompiled(schema), false);
    // ...and zod still filters them: an over-long value is refused.
    assert.deepEqual(both(z.object({ a: z.string().max(3) }), { a: 'long' }), {
      ours: 'refused',
      zods: 'refused',
    });
  });

  it('a route whose handler answers outside its schema gets 500 internal_error, with nothing of the answer', async () => {
    const app = Fastify({ logger: false });
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    installErrorHandling(app);
    app.get('/token', { schema: { response: { 200: tokenResponse } } }, async () => ({
      ...oauthAnswer,
      credentials: { access_token: 'sk-live-secret', refresh: 7 },
    }));
    try {
      const res = await app.inject({ method: 'GET', url: '/token' });
      assert.equal(res.statusCode, 500);
      assert.equal(res.json().error, 'internal_error');
      assert.doesNotMatch(res.body, /sk-live-secret/);
    } finally {
      await app.close();
    }
  });
});
