{{/* Names, labels, and the pieces every pod shares. */}}

{{- define "anomstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "anomstream" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-anomstream" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "anomstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: anomstream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "worker"). */}}
{{- define "anomstream.selector" -}}
app.kubernetes.io/name: anomstream
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "anomstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "anomstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "anomstream.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The Secret holding the SASL credentials (an existing one, or the chart's); empty = no SASL. */}}
{{- define "anomstream.saslSecret" -}}
{{- if .Values.kafka.sasl.mechanism -}}
{{- default (printf "%s-kafka-sasl" (include "anomstream.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the object store's credentials: (dict "root" $ "writer" true|false); empty = none. */}}
{{- define "anomstream.s3Secret" -}}
{{- $creds := .root.Values.registry.credentials -}}
{{- $main := "" -}}
{{- if $creds.existingSecret -}}
{{- $main = $creds.existingSecret -}}
{{- else if $creds.accessKeyId -}}
{{- $main = printf "%s-registry-s3" (include "anomstream.fullname" .root) -}}
{{- end -}}
{{- if and (not .writer) $creds.readOnlySecret -}}
{{- $creds.readOnlySecret -}}
{{- else -}}
{{- $main -}}
{{- end -}}
{{- end -}}

{{/* The setting that names the registry location (Settings.registry_url: a folder or s3://bucket/prefix). */}}
{{- define "anomstream.registryVariable" -}}ANOMSTREAM_REGISTRY_URL{{- end -}}

{{/* KEDA's name for a librdkafka SASL mechanism. */}}
{{- define "anomstream.kedaSasl" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") .Values.kafka.sasl.mechanism -}}
{{- end -}}

{{/* The workers' replica cap: worker.autoscaling.maxReplicas, or 0 = every partition the group
owns (topics.partitions on each scored stream's topic). */}}
{{- define "anomstream.workerMaxReplicas" -}}
{{- $owned := mul (int .Values.topics.partitions) (len .Values.worker.streams) -}}
{{- default $owned (int .Values.worker.autoscaling.maxReplicas) -}}
{{- end -}}

{{/* The incident stage's replica cap: incidents.autoscaling.maxReplicas, or 0 = alerts' partitions. */}}
{{- define "anomstream.incidentsMaxReplicas" -}}
{{- default (int .Values.topics.partitions) (int .Values.incidents.autoscaling.maxReplicas) -}}
{{- end -}}

{{/* "true" when the incident stage runs under a KEDA ScaledObject. */}}
{{- define "anomstream.incidentsScaled" -}}
{{- if and .Values.incidents.enabled .Values.incidents.autoscaling.enabled -}}true{{- end -}}
{{- end -}}

{{/*
A KEDA kafka trigger's metadata: (dict "root" $ "group" GROUP "scaling" AUTOSCALING-VALUES
["topic" LOGICAL-NAME]). Without "topic", KEDA sums the group's lag over all its topics.
*/}}
{{- define "anomstream.kedaKafka" -}}
{{- $v := .root.Values -}}
bootstrapServers: {{ $v.kafka.bootstrapServers | quote }}
consumerGroup: {{ .group | quote }}
{{- with .topic }}
topic: {{ printf "%s%s" $v.topics.prefix (get $v.topics.names .) | quote }}
{{- end }}
lagThreshold: {{ .scaling.lagThreshold | quote }}
activationLagThreshold: {{ .scaling.activationLagThreshold | quote }}
# A new group starts at the earliest offset (the consumers' auto.offset.reset): so does KEDA's lag.
offsetResetPolicy: earliest
allowIdleConsumers: "false"
{{- with include "anomstream.saslSecret" .root }}
sasl: {{ include "anomstream.kedaSasl" $.root }}
{{- end }}
{{- if include "anomstream.tls" .root }}
tls: enable
{{- end }}
{{- end -}}

{{/* HPA behavior of a ScaledObject: (its autoscaling values). */}}
{{- define "anomstream.hpaBehavior" -}}
# Lag jumps with every batch and rebalance: act on the lowest demand of the last few minutes when
# scaling down, one pod at a time, so replicas do not flap.
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDownStabilizationSeconds }}
  policies:
    - {type: Pods, value: 1, periodSeconds: {{ .scaleDownPeriodSeconds }}}
scaleUp:
  stabilizationWindowSeconds: {{ .scaleUpStabilizationSeconds }}
  policies:
    - {type: Pods, value: 2, periodSeconds: 60}
    - {type: Percent, value: 100, periodSeconds: 60}
  selectPolicy: Max
{{- end -}}

{{- define "anomstream.tls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{/*
Environment shared by every process: (dict "root" $ "writer" true|false). Writers (the drift
monitor) get the read-write object store credentials, the others the read-only ones when given.
*/}}
{{- define "anomstream.env" -}}
{{- $v := .root.Values -}}
- name: ANOMSTREAM_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: ANOMSTREAM_KAFKA__SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- with include "anomstream.saslSecret" .root }}
- name: ANOMSTREAM_KAFKA__SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: ANOMSTREAM_KAFKA__SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.kafka.sasl.usernameKey }}}}
- name: ANOMSTREAM_KAFKA__SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.kafka.sasl.passwordKey }}}}
{{- end }}
{{- if $v.kafka.tls.caSecret }}
- name: ANOMSTREAM_KAFKA__SSL_CA_LOCATION
  value: /etc/anomstream/kafka-ca/{{ $v.kafka.tls.caKey }}
{{- end }}
{{- range $name, $value := $v.kafka.properties }}
- name: ANOMSTREAM_KAFKA__{{ $name | replace "." "_" | upper }}
  value: {{ $value | toString | quote }}
{{- end }}
- name: ANOMSTREAM_TOPIC_PREFIX
  value: {{ $v.topics.prefix | quote }}
- name: ANOMSTREAM_TOPIC_PARTITIONS
  value: {{ $v.topics.partitions | quote }}
{{- range $name, $topic := $v.topics.names }}
- name: ANOMSTREAM_TOPICS__{{ $name | upper }}
  value: {{ $topic | quote }}
{{- end }}
- name: ANOMSTREAM_GROUP_ID
  value: {{ $v.worker.groupId | quote }}
{{- if $v.registry.url }}
- name: {{ include "anomstream.registryVariable" . }}
  value: {{ $v.registry.url | quote }}
{{- else }}
- name: ANOMSTREAM_REGISTRY_DIR
  value: /registry
{{- end }}
{{- with $v.state.url }}
- name: ANOMSTREAM_STATE_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.registry.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.registry.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with include "anomstream.s3Secret" . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.registry.credentials.accessKeyIdKey }}}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.registry.credentials.secretAccessKeyKey }}}}
{{- end }}
- name: ANOMSTREAM_STATE_DIR
  value: /state
- name: ANOMSTREAM_RESILIENCE__SHUTDOWN_GRACE_S
  value: {{ $v.resilience.shutdownGraceS | quote }}
- name: ANOMSTREAM_RESILIENCE__STALL_AFTER_S
  value: {{ $v.resilience.stallAfterS | quote }}
{{- /* The root filesystem is read-only: caches of Keras and matplotlib go to /tmp. */}}
- name: KERAS_HOME
  value: /tmp/keras
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes of every pod: (dict "root" $ "state" VOLUME-SOURCE-YAML). */}}
{{- define "anomstream.volumes" -}}
- name: tmp
  emptyDir: {}
- name: state
{{ .state | indent 2 }}
{{- if .root.Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ .root.Values.kafka.tls.caSecret }}}
{{- end }}
{{- if and (not .root.Values.registry.url) .root.Values.registry.existingClaim }}
- name: registry
  persistentVolumeClaim: {claimName: {{ .root.Values.registry.existingClaim }}}
{{- end }}
{{- end -}}

{{/* Mounts matching anomstream.volumes: (dict "root" $ "writer" true|false). */}}
{{- define "anomstream.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: state, mountPath: /state}
{{- if .root.Values.kafka.tls.caSecret }}
- {name: kafka-ca, mountPath: /etc/anomstream/kafka-ca, readOnly: true}
{{- end }}
{{- if and (not .root.Values.registry.url) .root.Values.registry.existingClaim }}
- {name: registry, mountPath: /registry, readOnly: {{ not .writer }}}
{{- end }}
{{- end -}}

{{/* Liveness on /healthz, readiness on /readyz, start-up on /healthz: (dict "root" $ "port" NAME). */}}
{{- define "anomstream.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  {{- toYaml $p.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  {{- toYaml $p.readiness | nindent 2 }}
{{- end -}}

{{/* What the templates cannot render sensibly: fail with the value to set. */}}
{{- define "anomstream.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required: the Kafka cluster's bootstrap servers (the image runs no broker)" -}}
{{- end -}}
{{- if not (or $v.registry.url $v.registry.existingClaim) -}}
{{- fail "set registry.url (s3://bucket/prefix, shared by every host) or registry.existingClaim (a ReadWriteMany PVC)" -}}
{{- end -}}
{{- if and $v.registry.url (not (hasPrefix "s3://" $v.registry.url)) -}}
{{- fail (printf "registry.url %q: expected s3://bucket/prefix" $v.registry.url) -}}
{{- end -}}
{{- if not (has $v.kafka.securityProtocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail (printf "kafka.securityProtocol %q: one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL" $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (not (include "anomstream.kedaSasl" .)) -}}
{{- fail (printf "kafka.sasl.mechanism %q: one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (others: extraEnvFrom, and no autoscaling)" $v.kafka.sasl.mechanism) -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret) (not (and $v.kafka.sasl.username $v.kafka.sasl.password)) -}}
{{- fail "kafka.sasl.mechanism is set: give kafka.sasl.existingSecret, or kafka.sasl.username and kafka.sasl.password" -}}
{{- end -}}
{{- if not $v.worker.streams -}}
{{- fail "worker.streams is empty: list at least one of kdd, ecg, sensor" -}}
{{- end -}}
{{- range $v.worker.streams -}}
{{- if not (has . (list "kdd" "ecg" "sensor")) -}}
{{- fail (printf "worker.streams: unknown stream %q (kdd, ecg, sensor)" .) -}}
{{- end -}}
{{- end -}}
{{- $a := $v.worker.autoscaling -}}
{{- $owned := mul (int $v.topics.partitions) (len $v.worker.streams) -}}
{{- if and $a.enabled (gt (int $a.maxReplicas) $owned) -}}
{{- fail (printf "worker.autoscaling.maxReplicas %v > %v, the partitions the workers' group owns (topics.partitions %v x %d streams): a worker beyond them sits idle; raise the partitions first, or leave maxReplicas 0" $a.maxReplicas $owned $v.topics.partitions (len $v.worker.streams)) -}}
{{- end -}}
{{- if and $a.enabled (gt (int $a.minReplicas) (int (include "anomstream.workerMaxReplicas" .))) -}}
{{- fail (printf "worker.autoscaling.minReplicas %v > maxReplicas %v" $a.minReplicas (include "anomstream.workerMaxReplicas" .)) -}}
{{- end -}}
{{- $i := $v.incidents -}}
{{- if and $i.enabled $i.autoscaling.enabled (gt (int $i.autoscaling.maxReplicas) (int $v.topics.partitions)) -}}
{{- fail (printf "incidents.autoscaling.maxReplicas %v > topics.partitions %v (the alerts topic's): a stage beyond them sits idle; leave it 0" $i.autoscaling.maxReplicas $v.topics.partitions) -}}
{{- end -}}
{{- if and $i.enabled $i.autoscaling.enabled (gt (int $i.autoscaling.minReplicas) (int (include "anomstream.incidentsMaxReplicas" .))) -}}
{{- fail (printf "incidents.autoscaling.minReplicas %v > maxReplicas %v" $i.autoscaling.minReplicas (include "anomstream.incidentsMaxReplicas" .)) -}}
{{- end -}}
{{- range $name, $grace := dict "worker" $v.worker.terminationGracePeriodSeconds "drift" $v.drift.terminationGracePeriodSeconds "incidents" $v.incidents.terminationGracePeriodSeconds -}}
{{- if le (float64 $grace) (addf $v.resilience.shutdownGraceS 5) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds %v must exceed resilience.shutdownGraceS %v by more than 5 s: SIGKILL would cut a clean stop short" $name $grace $v.resilience.shutdownGraceS) -}}
{{- end -}}
{{- end -}}
{{- end -}}
