package httpapi

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Field limits. The spec's limits count characters except icon (bytes); the others are
// imnode's own and documented in doc.go.
const (
	maxSecret      = 32
	maxUID         = 64
	maxName        = 64
	maxIcon        = 1024 // bytes
	maxMobile      = 32
	maxBirth       = 16
	maxEmail       = 64
	maxEx          = 1024
	maxOperationID = 128
	maxGroupID     = 64
	maxGroupName   = 128
	maxGroupText   = 1024 // introduction, notification
	maxURL         = 1024 // faceUrl, senderFaceURL
	maxReason      = 1024
	maxNodeID      = 64
	maxListLen     = 10000 // uid lists and group member lists
	maxForceList   = 1000
	maxPullMsgs    = 1000 // messages per msg/pull_msg_by_seq answer
)

// checkID checks a required identifier (uid, groupID, sendID...): non-empty, at most max
// characters, no control characters (they break logs, and nobody types them).
func checkID(field, v string, max int) error {
	if v == "" {
		return errArgs("%s is required and must not be empty", field)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return errArgs("%s is %d characters long, the limit is %d", field, n, max)
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return errArgs("%s must not contain control characters", field)
		}
	}
	return nil
}

// checkOpID checks a required operationID.
func checkOpID(v string) error { return checkID("operationID", v, maxOperationID) }

// checkText checks an optional string that may be empty: at most max characters.
func checkText(field, v string, max int) error {
	if n := utf8.RuneCountInString(v); n > max {
		return errArgs("%s is %d characters long, the limit is %d", field, n, max)
	}
	return nil
}

// checkBytes checks an optional string whose limit is in bytes.
func checkBytes(field, v string, max int) error {
	if len(v) > max {
		return errArgs("%s is %d bytes long, the limit is %d", field, len(v), max)
	}
	return nil
}

// checkIDList checks a required list of identifiers: non-empty, at most max entries,
// each a valid ID, no duplicates (a duplicate is a client bug, and would make per-uid
// answers ambiguous).
func checkIDList(field string, l []string, maxLen, maxID int) error {
	if len(l) == 0 {
		return errArgs("%s is required and must not be empty", field)
	}
	return checkOptIDList(field, l, maxLen, maxID)
}

// checkOptIDList is checkIDList for a list that may be absent or empty.
func checkOptIDList(field string, l []string, maxLen, maxID int) error {
	if len(l) > maxLen {
		return errArgs("%s has %d entries, the limit is %d", field, len(l), maxLen)
	}
	seen := make(map[string]struct{}, len(l))
	for i, v := range l {
		if err := checkID(field+"["+strconv.Itoa(i)+"]", v, maxID); err != nil {
			return err
		}
		if _, dup := seen[v]; dup {
			return errArgs("%s lists %q twice", field, v)
		}
		seen[v] = struct{}{}
	}
	return nil
}

// checkRequired reports a required field that is absent from the body.
func checkRequired[T any](field string, v *T) error {
	if v == nil {
		return errArgs("%s is required", field)
	}
	return nil
}

// checkPlatform checks a platform: iOS 1, Android 2, Windows 3, OSX 4, Web 5, applet 6,
// Linux 7.
func checkPlatform(p int) error {
	if p < 1 || p > 7 {
		return errArgs("platform must be 1 to 7 (iOS 1, Android 2, Windows 3, OSX 4, WEB 5, applet 6, linux 7), got %d", p)
	}
	return nil
}

// checkGender checks a gender: 0 unknown, 1 male, 2 female.
func checkGender(g int32) error {
	if g < 0 || g > 2 {
		return errArgs("gender must be 0 (unknown), 1 (male) or 2 (female), got %d", g)
	}
	return nil
}

// firstErr returns the first non-nil error, so a handler can list its checks in order.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
