// Package mqtt receives device readings from an MQTT v5 broker (MQTT 5.0,
// https://docs.oasis-open.org/mqtt/mqtt/v5.0/mqtt-v5.0.html) with
// eclipse/paho.golang's autopaho and hands each one to a Handler, which must
// commit it durably before the reading is acknowledged (PUBACK). It is the
// MQTT part of issue 3 ("Device ingestion"); only server/cmd wires it, and it
// imports nothing of Pulsewire but server/fhir.
//
// # Topics
//
// Devices publish at QoS 1 to
//
//	{prefix}/{tenant}/devices/{deviceId}/readings     (prefix defaults to "pulsewire")
//
// and every replica of the server subscribes to the shared subscription
// $share/{group}/{prefix}/+/devices/+/readings, so the broker hands each
// reading to one replica of the group (MQTT 5.0 §4.8.2). Devices may speak
// MQTT 3.1.1 or 5: the subscriber alone needs v5 features.
//
// # Device authentication: the broker's job (deploy-ready guidance)
//
// A subscriber cannot see who published a message, so "a device of tenant A
// can never write into tenant B" must be enforced where the device
// authenticates: at the broker. Give every device (or gateway) its own
// credential and let the broker's ACL confine it to its own topic. With
// Mosquitto 2.x (mosquitto.conf(5), mosquitto-password-file, acl_file):
//
//	# mosquitto.conf
//	listener 8883
//	cafile   /etc/mosquitto/ca.crt
//	certfile /etc/mosquitto/server.crt
//	keyfile  /etc/mosquitto/server.key
//	allow_anonymous false
//	password_file /etc/mosquitto/passwd     # mosquitto_passwd -c ... per device
//	# or, for client certificates, require_certificate true and
//	# use_identity_as_username true (the certificate CN becomes %u)
//	acl_file /etc/mosquitto/acl
//	persistence true
//	max_queued_messages 0   # REQUIRED: 0 = no limit (default 1000); see "Broker queue limit" below
//
//	# /etc/mosquitto/acl (reloaded on SIGHUP)
//	# (a) per-device credential, both tenant and device bound: provisioning
//	#     writes one entry per device (or one dynamic-security role each)
//	user acme.monitor-0042
//	topic write pulsewire/acme/devices/monitor-0042/readings
//
//	# (b) per-gateway (or per-tenant) credential: username = tenant. The
//	#     tenant is bound by the password (or certificate CN); the device id
//	#     is the MQTT client id, which is not itself authenticated, so this
//	#     isolates tenants but not devices within a tenant.
//	pattern write pulsewire/%u/devices/%c/readings
//	# or, for a gateway that relays many devices of its tenant:
//	# pattern write pulsewire/%u/devices/+/readings
//
//	# the ingestion service account, shared by the replicas of one deployment
//	# (both forms, since Mosquitto versions differ in whether the ACL check
//	# sees the $share/{group}/ prefix)
//	user pulsewire-ingest
//	topic read $share/pulsewire/pulsewire/+/devices/+/readings
//	topic read pulsewire/+/devices/+/readings
//
// %u is the username and %c the client id of the publishing connection
// (mosquitto.conf(5), "pattern"); a pattern with %u never matches a client
// without a username, so keep allow_anonymous false. Tenant names must satisfy
// fhir.ValidTenant and device ids [A-Za-z0-9._:-]{1,64}, or the subscriber
// drops the reading as a bad topic (counted and logged, see Stats).
//
// # Acknowledgement and redelivery
//
// The subscriber connects with Clean Start false and a Session Expiry
// Interval, subscribes at QoS 1 and acknowledges manually
// (paho.ClientConfig.EnableManualAcknowledgment): a PUBACK is sent only
// after the Handler returned nil (committed) or a *fhir.Error of KindInvalid
// or KindUnprocessable (the handler dead-lettered it; it can never succeed).
// Readings whose topic does not parse, or whose payload is over MaxPayload,
// are acknowledged without calling the handler and counted.
//
// MQTT requires PUBACKs in the order the PUBLISH packets were received
// (MQTT 5.0 §4.6). paho.golang enforces this for us: Client.Ack only marks
// a packet, and a ticker (ClientConfig.SendAcksInterval, 50 ms by default)
// sends the PUBACKs of the longest acknowledged prefix of the receive order.
// So the worker pool may finish readings in any order; a slow reading only
// delays the PUBACKs behind it. MQTT has no negative acknowledgement: the
// only way to get a message again is for the session to be resumed on a new
// connection, when the broker resends every unacknowledged QoS 1 PUBLISH with
// the DUP flag (MQTT 5.0 §4.4). A transient handler error therefore
// "poisons" the connection: the subscriber stops starting new readings from
// it, waits RetryDelay (so a failing database is not hammered and in-flight
// handlers can finish), closes the network connection, and autopaho
// reconnects with the same session. Mosquitto then resends everything that
// was not PUBACKed: the failed reading and every reading received after it on
// that connection, including ones that did succeed but whose PUBACK was held
// back by the ordering rule. Those are handed to the handler a second time,
// which the ingestion core tolerates (readings are idempotent by tenant,
// device, code and effective time). The receive window (Receive Maximum,
// Config.InFlight) is meant to bound how many readings that can be; see
// below for how far Mosquitto keeps to it.
//
// # Broker queue limit: set max_queued_messages 0
//
// Mosquitto holds, per subscriber session, the QoS 1 messages beyond the
// in-flight window in a queue capped by max_queued_messages (default 1000;
// the cap applies to connected sessions as much as to offline ones). Beyond
// the cap it discards new messages for that session, although it has already
// sent the publisher its PUBACK, and logs only "Outgoing messages are being
// dropped for client {id}". No subscriber can get those readings back. With
// the stock setting this happens as soon as publishers outrun ingestion by
// 1000 readings, e.g. for the seconds a replica restarts under load.
// server/cmd/pulsewire's crash test with 10,000 readings against the stock
// broker (PULSEWIRE_CRASH_MQTT_BROKER=tcp://127.0.0.1:1883) lost 2,282 of
// its 3,333 MQTT readings and none of the HTTP or NATS ones; it therefore
// runs its own Mosquitto with the limit off, and loses nothing.
// So a deployment must set max_queued_messages 0 (or a bound it has sized
// for its largest outage times its reading rate) and, for broker restarts,
// persistence true; a session's queue then grows with the backlog, bounded
// by the broker's memory (memory_limit, if set, refuses publishes instead:
// the publisher sees the failure and can retry). max_queued_bytes must stay
// 0 (unlimited) for the same reason.
//
// # Receive Maximum is not a bound on what arrives
//
// Config.InFlight is announced to the broker as Receive Maximum, but
// Mosquitto 2.0.11 does not keep to it once PUBACKs flow: resuming a session
// with 5,000 queued readings and Receive Maximum 32, the subscriber had up
// to 4,767 readings waiting for a handler (Stats.MaxQueued; a client that
// acknowledges nothing does get exactly 32). paho.golang reads every packet
// of a connection on one goroutine and hands PUBLISH packets on through a
// channel of Receive Maximum slots, so a subscriber that blocks when its
// queue is full also stops SUBACK and PINGRESP from being read: after a
// restart under load the SUBSCRIBE timed out ("mqtt subscribe failed ...
// context deadline exceeded", readiness never reached; a goroutine dump
// showed paho's read loop waiting on that channel), and a stall longer than
// the keep-alive would have the connection dropped. The queue to
// the handler goroutines is therefore unbounded; its depth is bounded by the
// session's backlog at the broker, and each waiting reading costs its
// payload (at most MaxPayload) plus about 200 bytes. Stats.OverWindow counts
// readings that arrived beyond the window, and the first one is logged.
//
// Observed with Mosquitto 2.0.11 (the tests check each point): readings not
// acknowledged come back on the next connection of the same client id (those
// already sent flagged DUP, the rest from the session queue), also for a
// shared subscription; readings acknowledged before the disconnect are not
// resent; a permanent error, bad topic or oversized payload is not resent.
// A member of a share group that is offline with a live session keeps its
// unacknowledged readings AND goes on being assigned its round-robin share of
// new ones (with two members, half) until it reconnects; Mosquitto does not
// move them to the members still connected. Hence, for deployment: give each
// replica a stable ClientID (e.g. a StatefulSet ordinal) so a restarted
// replica resumes its own session; set SessionExpiry longer than any outage
// you must survive (when it expires the queued readings are discarded); set
// max_queued_messages 0 on the broker. Scaling the group down for good is not
// safe with this adapter alone: the removed replica's session strands its
// readings until it expires, and then Mosquitto discards them.
package mqtt
