{{/* Names and labels. */}}
{{- define "redmux.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "redmux.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "redmux.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redmux.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "redmux.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "redmux.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "redmux.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "redmux.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The chart's own Secret (inline passwords only). */}}
{{- define "redmux.secretName" -}}
{{- printf "%s-secrets" (include "redmux.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* redis-ha's release name and full name, following redis-ha's own naming rule. */}}
{{- define "redmux.redisHa.release" -}}
{{- tpl (default .Release.Name .Values.redisHa.releaseName) . -}}
{{- end -}}

{{- define "redmux.redisHa.fullname" -}}
{{- if .Values.redisHa.fullnameOverride -}}
{{- .Values.redisHa.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $release := include "redmux.redisHa.release" . -}}
{{- if contains "redis-ha" $release -}}
{{- $release | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-redis-ha" $release | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Sentinel addresses as a JSON list (also valid TOML). */}}
{{- define "redmux.sentinels" -}}
{{- if .Values.sentinels -}}
{{- toJson .Values.sentinels -}}
{{- else -}}
{{- $full := include "redmux.redisHa.fullname" . -}}
{{- $suffix := "" -}}
{{- if .Values.redisHa.namespace -}}
{{- $suffix = printf ".%s.svc" .Values.redisHa.namespace -}}
{{- end -}}
{{- $port := int .Values.redisHa.sentinelPort -}}
{{- $list := list -}}
{{- if eq .Values.redisHa.sentinelService "headless" -}}
{{- $list = append $list (printf "%s%s:%d" $full $suffix $port) -}}
{{- else -}}
{{- range $i := until (int .Values.redisHa.replicas) -}}
{{- $list = append $list (printf "%s-announce-%d%s:%d" $full $i $suffix $port) -}}
{{- end -}}
{{- end -}}
{{- toJson $list -}}
{{- end -}}
{{- end -}}

{{/*
Where a password comes from, as YAML {name, key} (empty map = no password).
Order: explicit existingSecret, inline password (chart Secret), redis-ha's Secret.
*/}}
{{- define "redmux.redisPasswordRef" -}}
{{- if .Values.redis.existingSecret -}}
name: {{ .Values.redis.existingSecret }}
key: {{ .Values.redis.existingSecretKey }}
{{- else if .Values.redis.password -}}
name: {{ include "redmux.secretName" . }}
key: redis-password
{{- else if .Values.redisHa.auth -}}
name: {{ tpl (default (include "redmux.redisHa.fullname" .) .Values.redisHa.existingSecret) . }}
key: {{ .Values.redisHa.authKey }}
{{- end -}}
{{- end -}}

{{- define "redmux.sentinelPasswordRef" -}}
{{- if .Values.sentinel.existingSecret -}}
name: {{ .Values.sentinel.existingSecret }}
key: {{ .Values.sentinel.existingSecretKey }}
{{- else if .Values.sentinel.password -}}
name: {{ include "redmux.secretName" . }}
key: sentinel-password
{{- else if .Values.redisHa.sentinelAuth -}}
name: {{ tpl (default (printf "%s-sentinel" (include "redmux.redisHa.fullname" .)) .Values.redisHa.sentinelExistingSecret) . }}
key: {{ .Values.redisHa.sentinelAuthKey }}
{{- end -}}
{{- end -}}

{{/* True when the chart must create its own Secret. */}}
{{- define "redmux.needsSecret" -}}
{{- $need := false -}}
{{- if and .Values.redis.password (not .Values.redis.existingSecret) -}}{{- $need = true -}}{{- end -}}
{{- if and .Values.sentinel.password (not .Values.sentinel.existingSecret) -}}{{- $need = true -}}{{- end -}}
{{- range .Values.auth.clients -}}
{{- if and .password (not .existingSecret) -}}{{- $need = true -}}{{- end -}}
{{- end -}}
{{- if $need -}}true{{- end -}}
{{- end -}}

{{/* A TOML duration: integer seconds or a quoted string such as "500ms". */}}
{{- define "redmux.duration" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else -}}
{{- int64 . -}}
{{- end -}}
{{- end -}}

{{/* The proxy's allow list: clientAccess.cidrs + proxy.extraAllow. */}}
{{- define "redmux.allow" -}}
{{- toJson (concat .Values.clientAccess.cidrs .Values.proxy.extraAllow | uniq) -}}
{{- end -}}

{{/* Pod labels used by redis-ha's pods (for egress rules). */}}
{{- define "redmux.redisHa.podLabels" -}}
{{- if .Values.redisHa.podSelector -}}
{{- toYaml .Values.redisHa.podSelector -}}
{{- else -}}
app: redis-ha
release: {{ include "redmux.redisHa.release" . | quote }}
{{- end -}}
{{- end -}}
