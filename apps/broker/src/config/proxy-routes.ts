/**
 * Credential-proxy routes from configuration: `name=https://api.example.com/base,other=…`, the form
 * the original sidecar took in NEXUS_ROUTES. A route's name is the provider whose connections it
 * serves; its URL is the one upstream base the route reaches.
 */
export function parseProxyRoutes(
  variable: string,
  entries: readonly string[],
  problems: string[],
  options: { requireHttps: boolean },
): Map<string, URL> {
  const routes = new Map<string, URL>();
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const name = eq === -1 ? '' : entry.slice(0, eq).trim();
    const url = eq === -1 ? null : URL.parse(entry.slice(eq + 1).trim());
    if (!/^[a-z0-9-]{1,64}$/.test(name) || url === null) {
      problems.push(
        `${variable}: "${entry.slice(0, 80)}" is not name=URL (name: the provider's name, lower-case letters, digits and dashes; URL: absolute), e.g. github=https://api.github.com`,
      );
      continue;
    }
    if (url.protocol !== 'https:' && (options.requireHttps || url.protocol !== 'http:')) {
      problems.push(
        `${variable}: route ${name} must use ${options.requireHttps ? 'https' : 'http or https'} (got ${url.protocol.replace(':', '')})`,
      );
      continue;
    }
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      problems.push(`${variable}: route ${name}: the URL may not hold credentials, a query or a fragment`);
      continue;
    }
    if (routes.has(name)) {
      problems.push(`${variable}: route ${name} is given twice`);
      continue;
    }
    routes.set(name, url);
  }
  return routes;
}

/**
 * MCP gateway routes (`/mcp-gateway/<name>`): `name` marks the credential-proxy route of that name
 * (NEXUS_PROXY_ROUTES or the provider's `api_base_url`) as a remote MCP server's endpoint;
 * `name=https://…/mcp` gives provider `name`'s connections an MCP endpoint of its own, beside the
 * API its proxy route reaches. Unmarked routes are not reachable through the gateway.
 */
export function parseMcpGatewayRoutes(
  variable: string,
  entries: readonly string[],
  problems: string[],
  options: { requireHttps: boolean },
): Map<string, URL | null> {
  const marked = entries.filter((entry) => !entry.includes('='));
  const routes = new Map<string, URL | null>(
    parseProxyRoutes(
      variable,
      entries.filter((entry) => entry.includes('=')),
      problems,
      options,
    ),
  );
  for (const entry of marked) {
    const name = entry.trim();
    if (!/^[a-z0-9-]{1,64}$/.test(name)) {
      problems.push(
        `${variable}: "${entry.slice(0, 80)}" is not a route name (lower-case letters, digits and dashes) or name=URL`,
      );
      continue;
    }
    if (routes.has(name)) {
      problems.push(`${variable}: route ${name} is given twice`);
      continue;
    }
    routes.set(name, null);
  }
  return routes;
}
