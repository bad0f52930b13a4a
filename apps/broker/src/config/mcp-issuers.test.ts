import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mcpIssuerFor, parseMcpIssuers } from './mcp-issuers.ts';

describe('NEXUS_MCP_ISSUERS', () => {
  const parse = (entries: string[], requireHttps = false) => {
    const problems: string[] = [];
    return { entries: parseMcpIssuers('NEXUS_MCP_ISSUERS', entries, problems, { requireHttps }), problems };
  };

  it('reads an issuer, the agent its MCP clients act as, and the accepted clients', () => {
    const { entries, problems } = parse([
      'https://idp.example.com desk',
      'https://login.example.org helper a b',
    ]);
    assert.deepEqual(problems, []);
    assert.deepEqual(entries, [
      { issuer: 'https://idp.example.com', agentId: 'desk', clientIds: [] },
      { issuer: 'https://login.example.org', agentId: 'helper', clientIds: ['a', 'b'] },
    ]);
  });

  it('selects by issuer and, when listed, by the token client', () => {
    const { entries } = parse([
      'https://idp.example.com desk cursor',
      'https://idp.example.com other claude',
    ]);
    assert.equal(mcpIssuerFor(entries, 'https://idp.example.com', 'claude')?.agentId, 'other');
    assert.equal(mcpIssuerFor(entries, 'https://idp.example.com', 'cursor')?.agentId, 'desk');
    assert.equal(mcpIssuerFor(entries, 'https://idp.example.com', 'someone-else'), undefined);
    assert.equal(mcpIssuerFor(entries, 'https://idp.example.com', null), undefined);
    assert.equal(mcpIssuerFor(entries, 'https://elsewhere.example.com', 'cursor'), undefined);
  });

  it('refuses entries without an agent, non-URLs, plain http in production and ambiguous issuers', () => {
    assert.equal(parse(['https://idp.example.com']).problems.length, 1);
    assert.equal(parse(['idp desk']).problems.length, 1);
    assert.equal(parse(['http://127.0.0.1:9000 desk'], true).problems.length, 1);
    assert.deepEqual(parse(['http://127.0.0.1:9000 desk']).problems, []);
    // Twice without client ids: which agent would a token act as?
    assert.equal(parse(['https://idp.example.com a', 'https://idp.example.com b x']).problems.length, 1);
    assert.equal(parse(['https://idp.example.com a x', 'https://idp.example.com b x']).problems.length, 1);
  });
});
