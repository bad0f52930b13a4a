/** Providers: the list, a form to register one, edit and delete. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, canWrite } from '../api.ts';
import type { Provider } from '../types.ts';
import {
  ConfirmButton,
  ErrorBox,
  html,
  Loaded,
  Notice,
  PageTitle,
  Table,
  useAction,
  useLoad,
} from '../ui.ts';
import { EditProvider } from './provider-edit.ts';
import { CreateProvider, FromCatalogue } from './provider-forms.ts';

/** The list answers {id, name}: each profile is read for its type and endpoints. */
async function loadProviders(): Promise<Provider[]> {
  const list = await api<{ id: string; name: string }[]>('GET', '/providers');
  return Promise.all(list.map((p) => api<Provider>('GET', `/providers/${p.id}`).catch(() => p as Provider)));
}

export function ProvidersPage(): VNode {
  const [load, reload] = useLoad(loadProviders, []);
  const action = useAction();
  const writable = canWrite();
  const [editing, setEditing] = useState<string | undefined>();
  const remove = (p: Provider) =>
    action.run(async () => {
      await api('DELETE', `/providers/${p.id}`);
      reload();
      return `Provider ${p.name} deleted.`;
    });
  return html`<${PageTitle}>Providers</${PageTitle}>
    ${writable && html`<${FromCatalogue} onCreated=${reload} /><${CreateProvider} onCreated=${reload} />`}
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    <${Loaded} load=${load} render=${(list: Provider[]) => html`<${Table}
      caption="Providers"
      head=${['Name', 'Type', 'Issuer or authorization URL', 'Default scopes', 'Connections', ...(writable ? [''] : [])]}
      rows=${list.map((p) => [
        p.name,
        p.auth_type ?? '—',
        p.issuer || p.auth_url || '—',
        (p.scopes ?? []).join(' ') || '—',
        html`<a href=${`#/connections?provider=${encodeURIComponent(p.name)}`}>connections<span class="sr-only"> of ${p.name}</span></a>`,
        ...(writable
          ? [
              html`<div class="actions"><button type="button" aria-expanded=${editing === p.id} onClick=${() => setEditing(editing === p.id ? undefined : p.id)}>Edit<span class="sr-only"> ${p.name}</span></button>
              <${ConfirmButton} label=${`Delete ${p.name}`} confirmLabel="Yes, delete" disabled=${action.busy} onConfirm=${() => remove(p)} /></div>`,
            ]
          : []),
      ])}
      empty="No provider yet."
    />`}
    />
    ${writable && editing !== undefined && html`<${EditProvider} key=${editing} id=${editing} onSaved=${reload} onClose=${() => setEditing(undefined)} />`}`;
}
