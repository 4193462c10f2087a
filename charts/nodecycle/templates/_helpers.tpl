{{/* The image of the manager and the agent. */}}
{{- define "nodecycle.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Flags from a name: value map, as args list items, sorted by name. */}}
{{- define "nodecycle.flags" -}}
{{- range $name, $value := . }}
- {{ printf "--%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
