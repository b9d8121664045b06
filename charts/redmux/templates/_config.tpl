{{/*
redmux.toml. Strings are written with toJson: JSON escapes are valid TOML basic-string escapes.
Passwords are never written here: the file holds ${REDMUX_...} placeholders that redmux expands
from the environment (filled from Secrets by the pod spec).
*/}}
{{- define "redmux.toml" -}}
# Rendered by the redmux Helm chart; edit values.yaml, not this file.
bind = {{ printf "0.0.0.0:%d" (int .Values.proxy.port) | toJson }}
worker_threads = {{ int .Values.proxy.workerThreads }}
log_level = {{ toJson .Values.proxy.logLevel }}
log_format = {{ toJson .Values.proxy.logFormat }}
allow = {{ include "redmux.allow" . }}
max_clients = {{ int64 .Values.proxy.maxClients }}
client_timeout = {{ include "redmux.duration" .Values.proxy.clientTimeout }}
proxy_protocol = {{ .Values.proxy.proxyProtocol }}

[metrics]
bind = {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | toJson }}
{{- range $i, $c := .Values.auth.clients }}

[[auth]]
{{- if $c.anonymous }}
password = ""
{{- else }}
password = "${REDMUX_AUTH_{{ $i }}_PASSWORD}"
{{- end }}
mode = {{ toJson $c.mode }}
read_key_prefix = {{ toJson (default (list) $c.readKeyPrefix) }}
write_key_prefix = {{ toJson (default (list) $c.writeKeyPrefix) }}
{{- end }}

[sentinel_pool]
databases = {{ int .Values.pool.databases }}
hash = {{ toJson .Values.pool.hash }}
hash_tag = {{ toJson .Values.pool.hashTag }}
distribution = {{ toJson .Values.pool.distribution }}
master_read_priority = {{ int .Values.pool.masterReadPriority }}
static_replica_read_priority = {{ int .Values.pool.staticReplicaReadPriority }}
dynamic_replica_read_priority = {{ int .Values.pool.dynamicReplicaReadPriority }}
refresh_interval = {{ include "redmux.duration" .Values.pool.refreshInterval }}
server_timeout = {{ include "redmux.duration" .Values.pool.serverTimeout }}
server_failure_limit = {{ int .Values.pool.serverFailureLimit }}
server_retry_timeout = {{ include "redmux.duration" .Values.pool.serverRetryTimeout }}
keep_alive = {{ include "redmux.duration" .Values.pool.keepAlive }}
{{- with .Values.redis.user }}
user = {{ toJson . }}
{{- end }}
{{- if include "redmux.redisPasswordRef" . }}
password = "${REDMUX_PASSWORD}"
{{- end }}
{{- with .Values.sentinel.user }}
sentinel_user = {{ toJson . }}
{{- end }}
{{- if include "redmux.sentinelPasswordRef" . }}
sentinel_password = "${REDMUX_SENTINEL_PASSWORD}"
{{- end }}
sentinels = {{ include "redmux.sentinels" . }}
{{- range .Values.pool.groups }}

[[sentinel_pool.group]]
name = {{ toJson . }}
{{- end }}
{{- end -}}
