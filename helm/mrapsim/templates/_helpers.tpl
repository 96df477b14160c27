{{/* Names and labels. */}}
{{- define "mrapsim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mrapsim.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mrapsim.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mrapsim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mrapsim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mrapsim.labels" -}}
helm.sh/chart: {{ include "mrapsim.chart" . }}
{{ include "mrapsim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mrapsim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mrapsim.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mrapsim.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Paths inside the container; tests/deploy maps each mount to a temporary directory. */}}
{{- define "mrapsim.configDir" -}}/etc/mrapsim/config{{- end }}
{{- define "mrapsim.tlsDir" -}}/etc/mrapsim/tls{{- end }}
{{- define "mrapsim.stateDir" -}}/var/lib/mrapsim{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt (and, when minting is possible, the CA key). */}}
{{- define "mrapsim.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.mode is existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "mrapsim.fullname" .) }}
{{- end }}
{{- end }}

{{- define "mrapsim.caSecretName" -}}
{{- printf "%s-ca" (include "mrapsim.fullname" .) }}
{{- end }}

{{- define "mrapsim.credentialsSecretName" -}}
{{- default (printf "%s-credentials" (include "mrapsim.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}

{{- define "mrapsim.adminSecretName" -}}
{{- default (printf "%s-admin" (include "mrapsim.fullname" .)) .Values.admin.existingSecret }}
{{- end }}

{{- define "mrapsim.adminSecretKey" -}}
{{- if .Values.admin.existingSecret }}{{ .Values.admin.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{- define "mrapsim.credentialsSecretKey" -}}
{{- if .Values.credentials.existingSecret }}{{ .Values.credentials.existingSecretKey }}{{ else }}credentials{{ end }}
{{- end }}

{{/* The listener's port, from its "HOST:PORT" address. */}}
{{- define "mrapsim.addressPort" -}}
{{- regexReplaceAll "^.*:([0-9]+)$" . "${1}" }}
{{- end }}

{{/*
Names for the leaf certificate: every builtin route name an X.509 SAN can express (a wildcard only
as the whole leftmost label, at least three labels — the rule mrapsim's own leaf follows), then
localhost and the Service's DNS names, then tls.extraDnsNames. A JSON list.
*/}}
{{- define "mrapsim.dnsNames" -}}
{{- $names := list }}
{{- range $name, $listener := .Values.config.listeners }}
{{- range $route := $listener.routes }}
{{- $m := lower (trimSuffix "." $route.match) }}
{{- if eq $route.target "builtin" }}
{{- $labels := splitList "." $m }}
{{- if or (not (contains "*" $m)) (and (hasPrefix "*." $m) (not (contains "*" (trimPrefix "*." $m))) (ge (len $labels) 3)) }}
{{- $names = append $names $m }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $svc := include "mrapsim.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $names = concat $names (list "localhost" $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) .Values.tls.extraDnsNames }}
{{- $names | uniq | toJson }}
{{- end }}

{{/*
TOML rendering. Helm reads every number in values as a float64 (`toToml` would write 1000000 as
1e+06, which mrapsim rightly rejects as an integer), so integral numbers are written as integers.
Keys are sorted; strings are JSON strings, which are valid TOML basic strings.
*/}}
{{- define "mrapsim.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "mrapsim.toml.value" -}}
{{- $k := kindOf . }}
{{- if eq $k "string" }}{{ toJson . }}
{{- else if eq $k "bool" }}{{ . }}
{{- else if or (eq $k "float64") (eq $k "float32") }}{{ if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if hasPrefix "int" $k }}{{ . }}
{{- else if eq $k "slice" }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "mrapsim.toml.value" $e }}{{ end }}]
{{- else if eq $k "map" }}{ {{ $m := . }}{{ range $i, $key := keys $m | sortAlpha }}{{ if $i }}, {{ end }}{{ include "mrapsim.toml.key" $key }} = {{ include "mrapsim.toml.value" (get $m $key) }}{{ end }} }
{{- else }}{{ fail (printf "config: a %s value cannot be written as TOML (null is not allowed)" $k) }}
{{- end }}
{{- end }}

{{- define "mrapsim.toml.isTableArray" -}}
{{- if and (eq (kindOf .) "slice") (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}{{ if ne (kindOf .) "map" }}{{ $all = false }}{{ end }}{{ end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{/* dict "path" "a.b" "table" $map: scalar keys first, then sub-tables, then arrays of tables. */}}
{{- define "mrapsim.toml.table" -}}
{{- $path := .path }}
{{- $t := .table }}
{{- range $key := keys $t | sortAlpha }}
{{- $v := get $t $key }}
{{- if not (or (eq (kindOf $v) "map") (include "mrapsim.toml.isTableArray" $v)) }}
{{ include "mrapsim.toml.key" $key }} = {{ include "mrapsim.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $key := keys $t | sortAlpha }}
{{- $v := get $t $key }}
{{- $sub := include "mrapsim.toml.key" $key }}
{{- if $path }}{{ $sub = printf "%s.%s" $path $sub }}{{ end }}
{{- if eq (kindOf $v) "map" }}
{{- /* A header is needed for a table with keys of its own, or an empty one. */}}
{{- $own := eq (len $v) 0 }}
{{- range $k2, $v2 := $v }}{{ if not (or (eq (kindOf $v2) "map") (include "mrapsim.toml.isTableArray" $v2)) }}{{ $own = true }}{{ end }}{{ end }}
{{- if $own }}

[{{ $sub }}]
{{- end }}
{{- include "mrapsim.toml.table" (dict "path" $sub "table" $v) }}
{{- else if include "mrapsim.toml.isTableArray" $v }}
{{- range $item := $v }}

[[{{ $sub }}]]
{{- include "mrapsim.toml.table" (dict "path" $sub "table" $item) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The configuration document: values' config plus what the chart owns. */}}
{{- define "mrapsim.configToml" -}}
{{- $doc := deepCopy .Values.config }}
{{- $store := deepCopy (default dict $doc.store) }}
{{- $_ := set $store "path" (printf "%s/data" (include "mrapsim.stateDir" .)) }}
{{- $_ := set $doc "store" $store }}
{{- $_ := set $doc "tls" (dict "key_type" .Values.tls.keyType) }}
{{- /* mrapsim needs every key of a listener that its embedded defaults do not have: a listener
     added in values takes the MRAP edge's defaults for the keys it leaves out. */}}
{{- $listenerDefaults := dict "sni" "required" "on_missing_sni" "stall" "on_unknown_sni" "stall" "alpn" (list "http/1.1") "stall_timeout" "300s" "max_stalled" 4096 "client_hello_timeout" "10s" "max_client_hello" 16384 "routes" (list) }}
{{- $listeners := dict }}
{{- range $name, $listener := $doc.listeners }}
{{- $_ := set $listeners $name (merge (deepCopy $listener) (deepCopy $listenerDefaults)) }}
{{- end }}
{{- $_ := set $doc "listeners" $listeners -}}
# Rendered by the {{ include "mrapsim.chart" . }} Helm chart from .Values.config and layered over
# mrapsim's embedded defaults (`mrapsim config` prints the result). The admin address and
# certs_dir come from MRAPSIM_ADMIN and MRAPSIM_CERTS_DIR, credentials from MRAPSIM_CREDENTIALS.
{{- include "mrapsim.toml.table" (dict "path" "" "table" $doc) }}
{{ end }}
