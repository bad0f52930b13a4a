{{/* Names and labels. */}}
{{- define "nexus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "nexus.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Pods of one component: call with (dict "root" $ "component" "gateway"). */}}
{{- define "nexus.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "nexus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nexus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nexus.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/*
The pod spec every Nexus process shares: non-root, read-only root file system, no privileges,
writable /tmp (Node's compile cache) and /data (NEXUS_DATA_DIR) only.
Call with (dict "root" $ "component" "gateway" "args" (list "serve") "resources" $res "http" true).
*/}}
{{- define "nexus.podSpec" -}}
{{- $root := .root -}}
{{- /* The migrate hook runs before the release's service account exists, and needs only the
database: it runs as the namespace's default account, without a token. */ -}}
{{- $hook := eq .component "migrate" -}}
serviceAccountName: {{ if $hook }}default{{ else }}{{ include "nexus.serviceAccountName" $root }}{{ end }}
# Only Vault's Kubernetes auth needs the service-account token.
automountServiceAccountToken: {{ and $root.Values.vault.enabled (not $hook) }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
# SIGTERM finishes in-flight requests and writes pending audit events (docs/operations.md).
terminationGracePeriodSeconds: 30
containers:
  - name: {{ .component }}
    image: {{ include "nexus.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    {{- if .http }}
    ports:
      - name: http
        containerPort: 8080
        protocol: TCP
    {{- end }}
    env:
      {{- include "nexus.env" $root | nindent 6 }}
    {{- if $root.Values.existingSecret }}
    envFrom:
      - secretRef:
          name: {{ $root.Values.existingSecret }}
    {{- end }}
    {{- if .http }}
    # /health: the process answers. Readiness: /ready (database and secret backend) where the
    # role serves it; the gateway serves only the public surface, where /health is all there is.
    livenessProbe:
      httpGet: { path: /health, port: http }
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 3
    readinessProbe:
      httpGet: { path: {{ .readyPath }}, port: http }
      periodSeconds: 5
      timeoutSeconds: 3
      failureThreshold: 2
    startupProbe:
      httpGet: { path: /health, port: http }
      periodSeconds: 2
      failureThreshold: 60
    {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    volumeMounts:
      - { name: tmp, mountPath: /tmp }
      - { name: data, mountPath: /data }
volumes:
  - { name: tmp, emptyDir: {} }
  - { name: data, emptyDir: {} }
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Non-secret variables; the secret ones come from existingSecret (envFrom). */}}
{{- define "nexus.env" -}}
{{- $_ := required "existingSecret is required: the Secret with DATABASE_URL and the keys" .Values.existingSecret -}}
- name: BASE_URL
  value: {{ required "baseUrl is required: the public https URL of the gateway" .Values.baseUrl | quote }}
- name: NEXUS_AUTO_MIGRATE
  value: {{ (not .Values.migrations.job) | toString | quote }}
{{- with .Values.trustedProxies }}
- name: TRUSTED_PROXIES
  value: {{ . | quote }}
{{- end }}
{{- if .Values.vault.enabled }}
- name: VAULT_ADDR
  value: {{ required "vault.addr is required with vault.enabled" .Values.vault.addr | quote }}
- name: VAULT_K8S_ROLE
  value: {{ required "vault.role is required with vault.enabled" .Values.vault.role | quote }}
- name: VAULT_K8S_MOUNT
  value: {{ .Values.vault.authMount | quote }}
{{- if .Values.vault.secretBackend.enabled }}
- name: SECRET_BACKEND
  value: hashicorp-vault
- name: VAULT_MOUNT
  value: {{ .Values.vault.secretBackend.mount | quote }}
- name: VAULT_PATH_PREFIX
  value: {{ .Values.vault.secretBackend.pathPrefix | quote }}
{{- end }}
{{- if .Values.vault.transit.enabled }}
- name: KEY_PROVIDER
  value: transit
- name: TRANSIT_MOUNT
  value: {{ .Values.vault.transit.mount | quote }}
- name: TRANSIT_KEY
  value: {{ .Values.vault.transit.key | quote }}
{{- with .Values.vault.transit.encryptionKey }}
- name: ENCRYPTION_KEY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.vault.transit.stateKey }}
- name: STATE_KEY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.vault.transit.userSecretsKey }}
- name: USER_SECRETS_KEY
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
