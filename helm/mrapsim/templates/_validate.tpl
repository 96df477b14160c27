{{/* Checks a JSON schema cannot express; each failure names the value to change. */}}
{{- define "mrapsim.validate" -}}
{{- $listeners := .Values.config.listeners }}
{{- $ports := dict }}
{{- range $name, $listener := $listeners }}
{{- if not (regexMatch "^[a-z]([a-z0-9-]{0,13}[a-z0-9])?$" $name) }}
{{- fail (printf "config.listeners.%s: a listener name is also a Kubernetes port name: at most 15 lower-case letters, digits and '-'" $name) }}
{{- end }}
{{- if eq $name "admin" }}
{{- fail "config.listeners.admin: the name admin is the admin API's port; choose another" }}
{{- end }}
{{- $port := include "mrapsim.addressPort" $listener.address }}
{{- if hasKey $ports $port }}
{{- fail (printf "config.listeners.%s.address: port %s is also listener %s's" $name $port (get $ports $port)) }}
{{- end }}
{{- $_ := set $ports $port $name }}
{{- end }}
{{- if hasKey $ports (toString .Values.admin.port) }}
{{- fail (printf "admin.port: %v is also listener %s's port" .Values.admin.port (get $ports (toString .Values.admin.port))) }}
{{- end }}
{{- range $name, $_ := .Values.service.ports }}
{{- if not (or (eq $name "admin") (hasKey $listeners $name)) }}
{{- fail (printf "service.ports.%s: there is no listener %s in config.listeners (known: %s)" $name $name (keys $listeners | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- $needed := add (int .Values.preStopSleepSeconds) 6 }}
{{- if lt (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds: %v is shorter than preStopSleepSeconds + mrapsim's 5 s drain + 1 s (%d)" .Values.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- if and (eq (default "sigv4" .Values.config.auth.mode) "sigv4") (not .Values.credentials.existingSecret) (not .Values.credentials.keys) }}
{{- fail "credentials.keys: auth mode sigv4 needs at least one key pair (or credentials.existingSecret)" }}
{{- end }}
{{- if and (ne (toString .Values.podDisruptionBudget.maxUnavailable) "") (ne (toString .Values.podDisruptionBudget.minAvailable) "") }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (the other to \"\")" }}
{{- end }}
{{- end }}
