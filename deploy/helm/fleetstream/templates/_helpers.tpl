{{/*
Names, labels and the mapping of values onto FLEET_* environment variables.
*/}}

{{- define "fleetstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fleetstream.fullname" -}}
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

{{- define "fleetstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "fleetstream.labels" -}}
helm.sh/chart: {{ include "fleetstream.chart" . }}
{{ include "fleetstream.selectorLabels" . }}
app.kubernetes.io/version: {{ include "fleetstream.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleetstream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "fleetstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one processor's resources. Context: dict root, name. */}}
{{- define "fleetstream.processorLabels" -}}
{{ include "fleetstream.labels" .root }}
app.kubernetes.io/component: {{ include "fleetstream.componentName" .name }}
{{- end -}}

{{- define "fleetstream.processorSelectorLabels" -}}
{{ include "fleetstream.selectorLabels" .root }}
app.kubernetes.io/component: {{ include "fleetstream.componentName" .name }}
{{- end -}}

{{/* A processor name as a DNS label (processor names are hyphenated already). */}}
{{- define "fleetstream.componentName" -}}
{{- . | replace "_" "-" -}}
{{- end -}}

{{/* Resource name of a processor. Context: dict root, name. */}}
{{- define "fleetstream.processorFullname" -}}
{{- printf "%s-%s" (include "fleetstream.fullname" .root) (include "fleetstream.componentName" .name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fleetstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fleetstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fleetstream.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "fleetstream.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (include "fleetstream.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/*
One processor's settings: processorDefaults with processors.<name> merged over them (maps merge,
lists replace); a probe the processor sets replaces the default probe whole. Returns YAML.
Context: dict root, name.
*/}}
{{- define "fleetstream.processor" -}}
{{- $own := deepCopy (index .root.Values.processors .name | default dict) -}}
{{- $probes := list "livenessProbe" "readinessProbe" "startupProbe" -}}
{{- $merged := mustMergeOverwrite (deepCopy .root.Values.processorDefaults) (omit $own "livenessProbe" "readinessProbe" "startupProbe") -}}
{{- range $probe := $probes -}}
{{- if hasKey $own $probe -}}
{{- $_ := set $merged $probe (index $own $probe) -}}
{{- end -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Enabled processors' names, sorted, as a JSON list. */}}
{{- define "fleetstream.enabledProcessors" -}}
{{- $names := list -}}
{{- range $name := keys .Values.processors | sortAlpha -}}
{{- $p := include "fleetstream.processor" (dict "root" $ "name" $name) | fromYaml -}}
{{- if $p.enabled -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* A value as an env string: whole numbers without an exponent (values files give float64). */}}
{{- define "fleetstream.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{- define "fleetstream.kafkaCaDir" -}}/etc/fleetstream/tls/kafka{{- end -}}
{{- define "fleetstream.registryCaDir" -}}/etc/fleetstream/tls/schema-registry{{- end -}}

{{/* Non-secret settings every process reads (CommonSettings). Returns YAML: FLEET_* -> string. */}}
{{- define "fleetstream.commonEnv" -}}
{{- $v := .Values -}}
{{- $env := dict
  "FLEET_ENVIRONMENT" $v.environment
  "FLEET_LOG_LEVEL" $v.logLevel
  "FLEET_LOG_FORMAT" $v.logFormat
  "FLEET_METRICS_PORT" (toString $v.metrics.port)
  "FLEET_DEAD_LETTERS_MAX_RATIO" (toString $v.deadLetters.maxRatio)
  "FLEET_DEAD_LETTERS_WINDOW" (toString (int $v.deadLetters.window))
  "FLEET_STATE_DIR" $v.stateDir
  "FLEET_TOPIC_PREFIX" $v.topicPrefix
  "FLEET_KAFKA_BOOTSTRAP_SERVERS" $v.kafka.bootstrapServers
  "FLEET_KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "FLEET_KAFKA_COMMIT_STALL_S" (toString $v.kafka.commitStallSeconds)
  "FLEET_KAFKA_SESSION_TIMEOUT_S" (toString $v.kafka.sessionTimeoutSeconds)
  "FLEET_SCHEMA_REGISTRY_URL" $v.schemaRegistry.url
-}}
{{- if hasPrefix "SASL" $v.kafka.securityProtocol -}}
{{- $_ := set $env "FLEET_KAFKA_SASL_MECHANISM" $v.kafka.saslMechanism -}}
{{- $_ := set $env "FLEET_KAFKA_SASL_USERNAME" $v.kafka.saslUsername -}}
{{- end -}}
{{- if $v.kafka.sslCa.secretName -}}
{{- $_ := set $env "FLEET_KAFKA_SSL_CA_LOCATION" (printf "%s/%s" (include "fleetstream.kafkaCaDir" .) $v.kafka.sslCa.key) -}}
{{- end -}}
{{- if $v.schemaRegistry.username -}}
{{- $_ := set $env "FLEET_SCHEMA_REGISTRY_USERNAME" $v.schemaRegistry.username -}}
{{- end -}}
{{- /* a topic a processor finds missing is created as the provisioning job would create it */ -}}
{{- if $v.topics.replicationFactor -}}
{{- $_ := set $env "FLEET_TOPIC_REPLICATION_FACTOR" (toString $v.topics.replicationFactor) -}}
{{- end -}}
{{- if $v.topics.minInsyncReplicas -}}
{{- $_ := set $env "FLEET_TOPIC_MIN_INSYNC_REPLICAS" (toString $v.topics.minInsyncReplicas) -}}
{{- end -}}
{{- if $v.schemaRegistry.ca.secretName -}}
{{- $_ := set $env "FLEET_SCHEMA_REGISTRY_CA_LOCATION" (printf "%s/%s" (include "fleetstream.registryCaDir" .) $v.schemaRegistry.ca.key) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Non-secret settings of the stores a processor uses. Context: dict root, uses. Returns YAML. */}}
{{- define "fleetstream.storeEnv" -}}
{{- $v := .root.Values -}}
{{- $env := dict -}}
{{- if has "influx" .uses -}}
{{- $_ := set $env "FLEET_INFLUX_URL" $v.influx.url -}}
{{- $_ := set $env "FLEET_INFLUX_DATABASE" $v.influx.database -}}
{{- if $v.influx.username -}}
{{- $_ := set $env "FLEET_INFLUX_USERNAME" $v.influx.username -}}
{{- end -}}
{{- end -}}
{{- if has "auth" .uses -}}
{{- $_ := set $env "FLEET_AUTH_MODE" $v.auth.mode -}}
{{- $_ := set $env "FLEET_AUDIENCE" $v.auth.audience -}}
{{- $_ := set $env "FLEET_ISSUER" $v.auth.issuer -}}
{{- if $v.auth.jwksUrl -}}
{{- $_ := set $env "FLEET_JWKS_URL" $v.auth.jwksUrl -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/*
A processor's own ConfigMap data: its stores' settings, the settings naming its ports, metrics off
when it serves /metrics itself, then its `env` (which wins; values are templates, so they may name
other resources of the release). Context: dict root, name. Returns YAML.
*/}}
{{- define "fleetstream.processorEnv" -}}
{{- $p := include "fleetstream.processor" . | fromYaml -}}
{{- $env := include "fleetstream.storeEnv" (dict "root" .root "uses" $p.uses) | fromYaml -}}
{{- range $port := $p.ports -}}
{{- if $port.env -}}
{{- $_ := set $env $port.env (toString $port.containerPort) -}}
{{- end -}}
{{- end -}}
{{- if ne $p.metricsPort "metrics" -}}
{{- $_ := set $env "FLEET_METRICS_PORT" "0" -}}
{{- end -}}
{{- range $key, $value := $p.env -}}
{{- $_ := set $env $key (tpl (include "fleetstream.envValue" $value) $.root) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/*
The keys of the secret settings that apply, given the stores in use: a JSON list. A key is the env
name it is read as, except FLEET_POSTGRES_READER_DSN, read as FLEET_POSTGRES_DSN (see secretEnvName).
Context: dict root, uses.
*/}}
{{- define "fleetstream.secretKeys" -}}
{{- $v := .root.Values -}}
{{- $keys := list -}}
{{- if hasPrefix "SASL" $v.kafka.securityProtocol -}}
{{- $keys = append $keys "FLEET_KAFKA_SASL_PASSWORD" -}}
{{- end -}}
{{- if $v.schemaRegistry.username -}}
{{- $keys = append $keys "FLEET_SCHEMA_REGISTRY_PASSWORD" -}}
{{- end -}}
{{- if has "postgres" .uses -}}
{{- $keys = append $keys "FLEET_POSTGRES_DSN" -}}
{{- end -}}
{{- if has "postgresReader" .uses -}}
{{- $keys = append $keys "FLEET_POSTGRES_READER_DSN" -}}
{{- end -}}
{{- if has "redis" .uses -}}
{{- $keys = append $keys "FLEET_REDIS_URL" -}}
{{- end -}}
{{- if and (has "influx" .uses) $v.influx.username -}}
{{- $keys = append $keys "FLEET_INFLUX_PASSWORD" -}}
{{- end -}}
{{- if and (has "auth" .uses) (eq $v.auth.mode "hs256") -}}
{{- $keys = append $keys "FLEET_JWT_SECRET" -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{- define "fleetstream.secretName" -}}
{{- default (include "fleetstream.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The secret values given in values.yaml, by env name (set or not). */}}
{{- define "fleetstream.secretValues" -}}
{{- $v := .Values -}}
{{- toYaml (dict
  "FLEET_KAFKA_SASL_PASSWORD" $v.kafka.saslPassword
  "FLEET_SCHEMA_REGISTRY_PASSWORD" $v.schemaRegistry.password
  "FLEET_POSTGRES_DSN" $v.postgres.dsn
  "FLEET_POSTGRES_READER_DSN" ($v.postgres.readerDsn | default $v.postgres.dsn)
  "FLEET_REDIS_URL" $v.redis.url
  "FLEET_INFLUX_PASSWORD" $v.influx.password
  "FLEET_JWT_SECRET" $v.auth.jwtSecret) -}}
{{- end -}}

{{/* Where each secret setting comes from, for error messages. */}}
{{- define "fleetstream.secretSource" -}}
{{- $sources := dict
  "FLEET_KAFKA_SASL_PASSWORD" "kafka.saslPassword is required when kafka.securityProtocol is SASL_*"
  "FLEET_SCHEMA_REGISTRY_PASSWORD" "schemaRegistry.password is required when schemaRegistry.username is set"
  "FLEET_POSTGRES_DSN" "postgres.dsn is required by the processors that use postgres and by `fleet db migrate`"
  "FLEET_POSTGRES_READER_DSN" "postgres.readerDsn or postgres.dsn is required by the processors that use postgresReader"
  "FLEET_REDIS_URL" "redis.url is required by the processors that use redis"
  "FLEET_INFLUX_PASSWORD" "influx.password is required when influx.username is set"
  "FLEET_JWT_SECRET" "auth.jwtSecret"
-}}
{{- index $sources . -}}
{{- end -}}

{{/* The env name a secret key is read as. */}}
{{- define "fleetstream.secretEnvName" -}}
{{- eq . "FLEET_POSTGRES_READER_DSN" | ternary "FLEET_POSTGRES_DSN" . -}}
{{- end -}}

{{/* env entries that read secret settings. Context: dict root, keys (list of Secret keys). */}}
{{- define "fleetstream.secretEnvEntries" -}}
{{- $secret := include "fleetstream.secretName" .root -}}
{{- range $key := .keys }}
- name: {{ include "fleetstream.secretEnvName" $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end -}}
{{- end -}}

{{/* Volumes and mounts for the CAs of Kafka and the registry. */}}
{{- define "fleetstream.caVolumes" -}}
{{- with .Values.kafka.sslCa.secretName }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .Values.schemaRegistry.ca.secretName }}
- name: schema-registry-ca
  secret:
    secretName: {{ . }}
{{- end }}
{{- end -}}

{{- define "fleetstream.caVolumeMounts" -}}
{{- if .Values.kafka.sslCa.secretName }}
- name: kafka-ca
  mountPath: {{ include "fleetstream.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.schemaRegistry.ca.secretName }}
- name: schema-registry-ca
  mountPath: {{ include "fleetstream.registryCaDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
