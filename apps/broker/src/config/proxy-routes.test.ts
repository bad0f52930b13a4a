import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMcpGatewayRoutes } from './proxy-routes.ts';

describe('NEXUS_MCP_GATEWAY_ROUTES', () => {
  const parse = (entries: string[], requireHttps = false) => {
    const problems: string[] = [];
    const routes = parseMcpGatewayRoutes('NEXUS_MCP_GATEWAY_ROUTES', entries, problems, { requireHttps });
    return { routes, problems };
  };

  it('takes proxy routes by name and MCP endpoints for providers', () => {
    const { routes, problems } = parse(['linear-mcp', 'github=https://api.githubcopilot.com/mcp/']);
    assert.deepEqual(problems, []);
    assert.equal(routes.get('linear-mcp'), null);
    assert.equal(routes.get('github')?.href, 'https://api.githubcopilot.com/mcp/');
  });

  it('names every bad entry', () => {
    const { problems } = parse(
      [
        'Bad Name',
        'dup',
        'dup=https://x.example/mcp',
        'plain=http://x.example/mcp',
        'q=https://x.example/?a=1',
      ],
      true,
    );
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('"Bad Name"')));
    assert.ok(problems.some((p) => p.includes('route dup is given twice')));
    assert.ok(problems.some((p) => p.includes('route plain must use https')));
    assert.ok(problems.some((p) => p.includes('route q: the URL may not hold')));
  });
});
