{{/* The image of the manager and the agent. */}}
{{- define "nodecycle.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Flags from a name: value map, as args list items, sorted by name; a
list value repeats the flag (freeze: [..., ...]). */}}
{{- define "nodecycle.flags" -}}
{{- range $name, $value := . }}
{{- if kindIs "slice" $value }}
{{- range $value }}
- {{ printf "--%s=%v" $name . | quote }}
{{- end }}
{{- else }}
- {{ printf "--%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
{{- end }}
