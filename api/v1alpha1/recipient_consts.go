package v1alpha1

// NoticeState is where the erasure notice to one Recipient stands, in a
// DeletionRequest's status.recipients.
// +kubebuilder:validation:Enum=Pending;Notified;Acknowledged;Failed
type NoticeState string

// Notice states.
const (
	// NoticePending: not delivered yet (retried with backoff).
	NoticePending NoticeState = "Pending"
	// NoticeNotified: delivered (a 2xx answer); an Async recipient's
	// acknowledgement is awaited.
	NoticeNotified NoticeState = "Notified"
	// NoticeAcknowledged: the party acknowledged the notice. Final.
	NoticeAcknowledged NoticeState = "Acknowledged"
	// NoticeFailed: not acknowledged before the notice deadline, or it
	// cannot be sent at all (reason says why). Final.
	NoticeFailed NoticeState = "Failed"
)

// ConditionRecipientsNotified on a DeletionRequest sums up its notices:
// True (AllAcknowledged, or NoRecipients), False while some are under way
// (Notifying) or when one failed (NotificationFailed).
const ConditionRecipientsNotified = "RecipientsNotified"

// Recipient and notice reasons (conditions, events and
// status.recipients[].reason).
const (
	ReasonValid              = "Valid"
	ReasonNoRecipients       = "NoRecipients"
	ReasonNotifying          = "Notifying"
	ReasonAllAcknowledged    = "AllAcknowledged"
	ReasonNotificationFailed = "NotificationFailed"
	// ReasonNoticeDelivered: the endpoint answered 2xx.
	ReasonNoticeDelivered = "NoticeDelivered"
	// ReasonNoticeAcknowledged: the notice was acknowledged.
	ReasonNoticeAcknowledged = "NoticeAcknowledged"
	// ReasonDeliveryFailed: an attempt failed (an answer other than 2xx, a
	// connection or TLS failure); it is retried.
	ReasonDeliveryFailed = "DeliveryFailed"
	// ReasonForgedAcknowledgement: an acknowledgement whose signature does
	// not verify with the signing secret (or that names another notice) was
	// rejected.
	ReasonForgedAcknowledgement = "ForgedAcknowledgement"
	// ReasonNoticeDeadlineExceeded: the notice deadline passed before an
	// acknowledgement.
	ReasonNoticeDeadlineExceeded = "NoticeDeadlineExceeded"
	// ReasonRecipientGone: the Recipient was deleted before the notice was
	// acknowledged.
	ReasonRecipientGone = "RecipientGone"
	// ReasonNoticeLost: the Secret keeping the notices is gone (deleted by
	// hand), so a notice cannot be sent again.
	ReasonNoticeLost = "NoticeLost"
)

// LabelNotices marks the Secret a DeletionRequest keeps its erasure notices
// in (<request>-notices, owned by the request) until each is acknowledged or
// failed.
const LabelNotices = "retention.lethe.dev/notices"

// DeletionRequest backup conditions and reasons.
const (
	// ConditionBackupsExpired on a completed DeletionRequest: True once the
	// last backup that may still hold the subject has expired
	// (status.backupsExpireTime), False before, Unknown when a DataStore of
	// the plan does not declare spec.backups.
	ConditionBackupsExpired = "BackupsExpired"
	ReasonBackupsExpired    = "BackupsExpired"
	ReasonBackupsRetained   = "BackupsRetained"
	// ReasonBackupRetentionUnknown: a DataStore of the plan does not say how
	// long its backups are kept.
	ReasonBackupRetentionUnknown = "BackupRetentionUnknown"
)
