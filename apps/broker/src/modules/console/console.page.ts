/**
 * The console's one HTML page. It holds no data and no inline script or style: everything runs
 * from /console/app.js under a CSP that allows scripts, styles and requests from this origin only.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  // The app never writes HTML as a string: any attempt (an injection) throws instead.
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

export const CONSOLE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Nexus console</title>
<link rel="stylesheet" href="/console/app.css">
<script type="module" src="/console/app.js"></script>
</head>
<body>
<div id="app"><noscript>The Nexus console needs JavaScript.</noscript></div>
</body>
</html>
`;

/** Shown instead of the console when its frontend was not compiled. */
export const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Nexus console not built</title></head>
<body><h1>The console is not built</h1>
<p>Run <code>npm run build</code> (or <code>npm ci</code>, which runs it) and reload this page.</p></body>
</html>
`;
