/** The two ways to register a provider: from a catalogue entry, or from a form of its fields. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Field, formValues, html, items, Notice, useAction, useLoad } from '../ui.ts';

const AUTH_TYPES = ['oauth2', 'api_key', 'basic_auth', 'header', 'query_param', 'hmac_payload', 'aws_sigv4'];

interface CatalogueEntry {
  key: string;
  name: string;
  description?: string;
  auth_type: string;
  parameters: string[];
}

/**
 * A provider made from a catalogue entry (`GET /catalog`, decision 0015): the entry gives the
 * endpoints and quirks, the operator gives the OAuth app's client id and secret.
 */
export function FromCatalogue({ onCreated }: { onCreated: () => void }): VNode | null {
  const [load] = useLoad(
    () => api<{ entries: CatalogueEntry[] }>('GET', '/catalog').then((r) => r.entries),
    [],
  );
  const [key, setKey] = useState('');
  const action = useAction();
  if (load.state !== 'done') return null; // a broker without the catalogue: only the form below
  const entry = load.value.find((e) => e.key === key);
  const submit = (event: Event) => {
    const v = formValues(event);
    const form = event.currentTarget as HTMLFormElement;
    const profile: Record<string, unknown> = { template: v.template };
    for (const k of ['name', 'client_id', 'client_secret']) if (v[k]) profile[k] = v[k];
    return action.run(async () => {
      await api('POST', '/providers', { body: { profile } });
      form.reset();
      setKey('');
      onCreated();
      return `Provider ${v.name || v.template} registered from the catalogue.`;
    });
  };
  return html`<details class="panel">
    <summary>Add from the catalogue (${load.value.length} APIs)</summary>
    <form onSubmit=${submit} aria-label="Add a provider from the catalogue">
      <${Field} id="c-entry" label="API">
        <select id="c-entry" name="template" required value=${key} onChange=${(e: Event) => setKey((e.target as HTMLSelectElement).value)}>
          <option value="">Choose…</option>
          ${load.value.map((e) => html`<option value=${e.key}>${e.name} (${e.auth_type})</option>`)}
        </select>
      </${Field}>
      ${entry?.description && html`<p class="muted">${entry.description}</p>`}
      <${Field} id="c-name" label="Provider name" hint="Optional: the entry's key by default.">
        <input id="c-name" name="name" maxlength="64" pattern="[a-z0-9\\-]+" placeholder=${entry?.key ?? ''} aria-describedby="c-name-hint" />
      </${Field}>
      ${
        entry?.auth_type === 'oauth2' &&
        html`<${Field} id="c-client-id" label="Client id"><input id="c-client-id" name="client_id" required maxlength="512" autocomplete="off" /></${Field}>
        <${Field} id="c-client-secret" label="Client secret" hint="Stored encrypted; never shown again."><input id="c-client-secret" name="client_secret" type="password" maxlength="16384" autocomplete="off" aria-describedby="c-client-secret-hint" /></${Field}>`
      }
      ${entry !== undefined && entry.parameters.length > 0 && html`<p class="muted">Each connection gives: ${entry.parameters.join(', ')} (connection_config).</p>`}
      <button type="submit" class="primary" disabled=${action.busy}>Add</button>
    </form>
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
  </details>`;
}

/** A provider from its fields (an API the catalogue does not have, or a private one). */
export function CreateProvider({ onCreated }: { onCreated: () => void }): VNode {
  const action = useAction();
  const [type, setType] = useState('oauth2');
  const submit = (event: Event) => {
    const v = formValues(event);
    const form = event.currentTarget as HTMLFormElement;
    const profile: Record<string, unknown> = { name: v.name, auth_type: v.auth_type };
    if (v.auth_type === 'oauth2') {
      for (const k of ['client_id', 'client_secret', 'issuer', 'auth_url', 'token_url', 'api_base_url'])
        if (v[k]) profile[k] = v[k];
      if (v.enable_discovery === 'on') profile.enable_discovery = true;
      const scopes = items(v.scopes ?? '');
      if (scopes.length > 0) profile.scopes = scopes;
    } else if (v.api_base_url) profile.api_base_url = v.api_base_url;
    return action.run(async () => {
      await api('POST', '/providers', { body: { profile } });
      form.reset();
      setType('oauth2');
      onCreated();
      return `Provider ${v.name} registered.`;
    });
  };
  const oauth = type === 'oauth2';
  return html`<details class="panel">
    <summary>Register a provider from its fields</summary>
    <form onSubmit=${submit} aria-label="Register a provider">
      <${Field} id="p-name" label="Name" hint="Lower-case letters, digits and dashes.">
        <input id="p-name" name="name" required maxlength="64" pattern="[a-z0-9\\-]+" aria-describedby="p-name-hint" />
      </${Field}>
      <${Field} id="p-type" label="Authentication">
        <select id="p-type" name="auth_type" value=${type} onChange=${(e: Event) => setType((e.target as HTMLSelectElement).value)}>
          ${AUTH_TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
        </select>
      </${Field}>
      ${
        oauth &&
        html`
        <${Field} id="p-issuer" label="Issuer" hint="With discovery, the endpoints are read from the issuer."><input id="p-issuer" name="issuer" type="url" maxlength="2048" aria-describedby="p-issuer-hint" /></${Field}>
        <div class="field check"><input id="p-discovery" name="enable_discovery" type="checkbox" /><label for="p-discovery">Discover endpoints from the issuer</label></div>
        <${Field} id="p-auth-url" label="Authorization URL"><input id="p-auth-url" name="auth_url" type="url" maxlength="2048" /></${Field}>
        <${Field} id="p-token-url" label="Token URL"><input id="p-token-url" name="token_url" type="url" maxlength="2048" /></${Field}>
        <${Field} id="p-client-id" label="Client id"><input id="p-client-id" name="client_id" maxlength="512" autocomplete="off" /></${Field}>
        <${Field} id="p-client-secret" label="Client secret" hint="Stored encrypted; never shown again."><input id="p-client-secret" name="client_secret" type="password" maxlength="16384" autocomplete="off" aria-describedby="p-client-secret-hint" /></${Field}>
        <${Field} id="p-scopes" label="Default scopes" hint="Separated by spaces."><input id="p-scopes" name="scopes" maxlength="4000" aria-describedby="p-scopes-hint" /></${Field}>`
      }
      <${Field} id="p-api" label="API base URL"><input id="p-api" name="api_base_url" type="url" maxlength="2048" /></${Field}>
      ${!oauth && html`<p class="muted">Static-credential providers take their fields from the strategy's defaults; set a credential schema through the API (docs/providers.md).</p>`}
      <button type="submit" class="primary" disabled=${action.busy}>Register</button>
    </form>
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
  </details>`;
}
