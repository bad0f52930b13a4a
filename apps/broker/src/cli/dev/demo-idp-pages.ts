/** The pages of the demo identity provider (demo-idp.ts), each under the demo banner. */
import { type DemoPage, demoPage, escapeHtml } from './demo-page.ts';

/** The demo account: shown on the login page, so anyone can sign in. */
export const DEMO_LOGIN = 'demo';
export const DEMO_PASSWORD = 'demo';
const BANNER = 'this identity provider is a local demo of nexus dev. Never enter a real password here.';

export function homePage(issuer: string): DemoPage {
  return demoPage(
    'Demo identity provider',
    BANNER,
    `<h1>Demo identity provider</h1>
<p>An OpenID provider for <code>nexus dev</code>. Its discovery document is at
<a href="/.well-known/openid-configuration">${escapeHtml(issuer)}/.well-known/openid-configuration</a>.</p>`,
  );
}

export function loginPage(uid: string, clientId: string, brokerOrigin: string, failed = false): DemoPage {
  return demoPage(
    'Sign in to the demo identity provider',
    BANNER,
    `<h1>Sign in to the demo identity provider</h1>
<p><strong>${escapeHtml(clientId)}</strong> wants you to sign in.</p>
${failed ? '<p class="error" role="alert">That is not the demo account. Use the values below.</p>' : ''}
<p class="note">The only account is the demo account: user <code>${DEMO_LOGIN}</code>, password <code>${DEMO_PASSWORD}</code> (already filled in).</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="login">User</label><input id="login" name="login" value="${DEMO_LOGIN}" autocomplete="off">
<label for="password">Password</label><input id="password" name="password" type="password" value="${DEMO_PASSWORD}" autocomplete="off">
<button type="submit">Sign in as the demo user</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button class="secondary" type="submit">Cancel</button></form>`,
    { formTo: [brokerOrigin] },
  );
}

export function consentPage(uid: string, clientId: string, scope: string, brokerOrigin: string): DemoPage {
  const scopes = scope
    .split(' ')
    .filter((s) => s !== '')
    .map((s) => `<li><code>${escapeHtml(s)}</code></li>`)
    .join('');
  return demoPage(
    'Allow access (demo identity provider)',
    BANNER,
    `<h1>Allow ${escapeHtml(clientId)} to act for the demo user?</h1>
<p>Signed in as <strong>${DEMO_LOGIN}</strong>. It asks for:</p><ul>${scopes}</ul>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button class="secondary" type="submit">Deny</button></form>`,
    { formTo: [brokerOrigin] },
  );
}

export function errorPage(error: string, description: string): DemoPage {
  return demoPage(
    'Demo identity provider: error',
    BANNER,
    `<h1>Something went wrong</h1><p class="error"><code>${escapeHtml(error)}</code> ${escapeHtml(description)}</p>
<p class="note">Start again from the URL <code>nexus dev</code> printed.</p>`,
  );
}
