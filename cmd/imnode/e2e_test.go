package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imnode/imnode/apiclient"
)

// The spec's request bodies, verbatim (spec/server-api.md), with the group IDs of invite and
// kick replaced by the one create_group returned.
const (
	specRegister = `{"secret":"tuoyun","platform":1,"uid":"d5645454517","name":"Zhang San","icon":"https:oss.com.cn/head","gender":1,"mobile":"17812457845","birth":"1998.12.15","email":"xxxx@qq.com","ex":"xxx"}`
	specToken    = `{"secret":"tuoyun","platform":1,"uid":"d5645454517"}`
	specCreate   = `{"memberList":[{"uid":"21979710c3fe454d","setRole":1},{"uid":"89b8924ea455a642","setRole":2}],"groupName":"groupName_on10","introduction":"Introduction","notification":"公告","faceUrl":"url","operationID":"1"}`
	specInvite   = `{"groupID":"%s","uidList":["f732156059eeb5d0"],"reason":"reason","operationID":"1111111111111 "}`
	specKick     = `{"groupID":"%s","uidListInfo":[{"userId":"f732156059eeb5d0"}],"operationID":"1111111111111 "}`
	specImport   = `{"uid":"21979710c3fe454d","operationID":"1111111222","ownerUid":"f732156059eeb5d0"}`
	specBlack    = `{	"uid":"21979710c3fe454d",	"operationID": "1111111222",	"ownerUid" : "f732156059eeb5d0"}`
	specUpdate   = `{"uid":"21979710c3fe454d","operationID":"1111111222","name":"sssssssssskkkkk"}`
	specDelete   = `{"operationID":"1111111222","deleteUidList":["123","343","456"]}`
	specGetInfo  = `{"operationID":"1111111222","uidList":["123","3434"]}`
	specAllUIDs  = `{"operationID":"1111111222"}`
	specSend     = `{"operationID":"1111111222","sendID":"1111111222","recvID":"1111111222","senderNickName":"Zhang San","senderFaceURL":"http://www.head.com","forceList":["122","223"],"content":{"text":"nihao"},"contentType":101,"sessionType":1}`
)

func TestSpecRequestsVerbatimOnOneNode(t *testing.T) {
	procs := startCluster(t, 1)
	c := procs[0].Client()
	for _, uid := range []string{"21979710c3fe454d", "89b8924ea455a642", "f732156059eeb5d0", "1111111222", "123", "3434"} {
		mustRegister(t, c, uid)
	}
	r := mustOK(t, c, "auth/user_register", []byte(specRegister))
	var reg struct {
		UID         string `json:"uid"`
		Token       string `json:"token"`
		ExpiredTime int64  `json:"expiredTime"`
	}
	if err := r.DecodeData(&reg); err != nil || reg.UID != "d5645454517" || reg.Token == "" || reg.ExpiredTime <= time.Now().Unix() {
		t.Fatalf("register answer %s", r.Raw)
	}
	mustOK(t, c, "auth/user_token", []byte(specToken))
	admin := mustAdmin(t, procs[0])

	r = mustOK(t, admin, "group/create_group", []byte(specCreate))
	var g struct {
		GroupID string `json:"groupID"`
	}
	if err := r.DecodeData(&g); err != nil || len(g.GroupID) != 32 {
		t.Fatalf("create_group answer %s", r.Raw)
	}
	r = mustOK(t, admin, "group/invite_user_to_group", []byte(fmt.Sprintf(specInvite, g.GroupID)))
	wantUIDResults(t, r, `[{"uid":"f732156059eeb5d0","result":0}]`)
	r = mustOK(t, admin, "group/kick_group", []byte(fmt.Sprintf(specKick, g.GroupID)))
	wantUIDResults(t, r, `[{"uid":"f732156059eeb5d0","result":0}]`)
	mustOK(t, admin, "friend/import_friend", []byte(specImport))
	mustOK(t, admin, "friend/add_blacklist", []byte(specBlack))
	mustOK(t, admin, "user/update_user_info", []byte(specUpdate))
	r = mustOK(t, admin, "manager/delete_user", []byte(specDelete))
	var del struct {
		Failed []string `json:"failedUidList"`
	}
	if err := r.Decode(&del); err != nil || strings.Join(del.Failed, ",") != "343,456" {
		t.Fatalf("delete_user answer %s, want failedUidList [343 456]", r.Raw)
	}
	r = mustOK(t, admin, "user/get_user_info", []byte(specGetInfo))
	var users []map[string]interface{}
	if err := r.DecodeData(&users); err != nil || len(users) != 1 || users[0]["uid"] != "3434" {
		t.Fatalf("get_user_info answer %s, want only 3434 (123 was deleted)", r.Raw)
	}
	for _, k := range []string{"uid", "name", "icon", "gender", "mobile", "birth", "email", "ex"} {
		if _, ok := users[0][k]; !ok {
			t.Fatalf("get_user_info lacks %q: %s", k, r.Raw)
		}
	}
	r = mustOK(t, admin, "manager/get_all_users_uid", []byte(specAllUIDs))
	var all struct {
		UIDList []string `json:"uidList"`
	}
	if err := r.Decode(&all); err != nil || !contains(all.UIDList, "d5645454517") || contains(all.UIDList, "123") {
		t.Fatalf("get_all_users_uid answer %s", r.Raw)
	}
	r = mustOK(t, admin, "manager/send_msg", []byte(specSend))
	firstSend := r.Raw
	var sent struct {
		SendTime int64  `json:"sendTime"`
		MsgID    string `json:"msgID"`
		Seq      uint64 `json:"seq"`
		ConvID   string `json:"conversationID"`
	}
	if err := r.Decode(&sent); err != nil || sent.SendTime <= 0 || len(sent.MsgID) != 32 || sent.Seq != 1 {
		t.Fatalf("send_msg answer %s", r.Raw)
	}

	// The reads show every effect.
	r = mustOK(t, admin, "user/get_user_info", map[string]interface{}{"operationID": "r1", "uidList": []string{"21979710c3fe454d"}})
	if !bytes.Contains(r.Raw, []byte(`"name":"sssssssssskkkkk"`)) {
		t.Fatalf("update not visible: %s", r.Raw)
	}
	r = mustOK(t, admin, "friend/get_friend_list", map[string]interface{}{"operationID": "r2", "ownerUid": "f732156059eeb5d0"})
	if !bytes.Contains(r.Raw, []byte("21979710c3fe454d")) {
		t.Fatalf("friendship not visible: %s", r.Raw)
	}
	r = mustOK(t, admin, "friend/get_blacklist", map[string]interface{}{"operationID": "r3", "ownerUid": "f732156059eeb5d0"})
	if !bytes.Contains(r.Raw, []byte("21979710c3fe454d")) {
		t.Fatalf("blacklist not visible: %s", r.Raw)
	}
	r = mustOK(t, admin, "group/get_group_member_list", map[string]interface{}{"operationID": "r4", "groupID": g.GroupID})
	if !bytes.Contains(r.Raw, []byte("89b8924ea455a642")) || bytes.Contains(r.Raw, []byte("f732156059eeb5d0")) {
		t.Fatalf("members after invite+kick: %s", r.Raw)
	}
	r = mustOK(t, admin, "msg/pull_msg_by_seq", map[string]interface{}{"operationID": "r5", "conversationID": sent.ConvID, "beginSeq": 1, "endSeq": 10})
	if !bytes.Contains(r.Raw, []byte(sent.MsgID)) || !bytes.Contains(r.Raw, []byte(`"text":"nihao"`)) {
		t.Fatalf("message not visible: %s", r.Raw)
	}

	// The same request with the same operationID: one effect, the first answer.
	again := mustOK(t, admin, "manager/send_msg", []byte(specSend))
	if !bytes.Equal(again.Raw, firstSend) {
		t.Fatalf("replayed send answered %s, want the first answer %s", again.Raw, firstSend)
	}
	r = mustOK(t, admin, "msg/newest_seq", map[string]interface{}{"operationID": "r6", "uid": "1111111222"})
	if !bytes.Contains(r.Raw, []byte(`"maxSeq":1`)) {
		t.Fatalf("a replayed send was applied twice: %s", r.Raw)
	}
}

func wantUIDResults(t *testing.T, r *apiclient.Response, want string) {
	t.Helper()
	var got, exp []map[string]interface{}
	_ = json.Unmarshal([]byte(want), &exp)
	if err := r.DecodeData(&got); err != nil || fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Fatalf("got %s, want data %s", r.Raw, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sendText(t *testing.T, c *apiclient.Client, op, from, to, text string) *apiclient.Response {
	t.Helper()
	return mustOK(t, c, "manager/send_msg", map[string]interface{}{"operationID": op, "sendID": from, "recvID": to,
		"contentType": 101, "sessionType": 1, "content": map[string]string{"text": text}})
}

func pullTexts(t *testing.T, c *apiclient.Client, conv string) []string {
	t.Helper()
	r := mustOK(t, c, "msg/pull_msg_by_seq", map[string]interface{}{"operationID": "pull", "conversationID": conv, "beginSeq": 1, "endSeq": 1000})
	var msgs []struct {
		Seq     uint64 `json:"seq"`
		Content struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := r.DecodeData(&msgs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d has seq %d: gap or reorder", conv, i, m.Seq)
		}
		out = append(out, m.Content.Text)
	}
	return out
}

func TestThreeNodesSurviveLeaderKillAndFullRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	admin := mustAdmin(t, procs[0])
	mustRegister(t, procs[1].Client(), "alice")
	mustRegister(t, procs[2].Client(), "bob")

	// A write through any node is seen by a linearizable read on any other right after.
	var want []string
	for i, p := range procs {
		text := fmt.Sprintf("via-%s", p.ID)
		sendText(t, mustAdmin(t, p), fmt.Sprintf("w%d", i), "alice", "bob", text)
		want = append(want, text)
		for _, q := range procs {
			if got := pullTexts(t, mustAdmin(t, q), "si_alice_bob"); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("read on %s after write via %s: got %v, want %v", q.ID, p.ID, got, want)
			}
		}
	}
	_ = admin

	// kill -9 the leader: writes through the survivors succeed again within seconds.
	old := leaderOf(t, procs)
	old.Signal(syscall.SIGKILL)
	var alive []*proc
	for _, p := range procs {
		if p != old {
			alive = append(alive, p)
		}
	}
	start := time.Now()
	for i := 0; ; i++ {
		c := mustAdmin(t, alive[i%2])
		r, err := c.Post("manager/send_msg", map[string]interface{}{"operationID": "after-kill", "sendID": "bob", "recvID": "alice",
			"contentType": 101, "sessionType": 1, "content": map[string]string{"text": "after-kill"}})
		if err == nil && r.ErrCode == 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("no write accepted 15 s after killing the leader: %v %v", err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("first write accepted %v after kill -9 of the leader", time.Since(start).Round(time.Millisecond))
	want = append(want, "after-kill")
	for i := 0; i < 5; i++ {
		text := fmt.Sprintf("missed-%d", i)
		sendText(t, mustAdmin(t, alive[i%2]), "m"+text, "alice", "bob", text)
		want = append(want, text)
	}

	// The killed node, restarted, catches up with everything it missed.
	old.Start()
	old.WaitReady()
	if got := pullTexts(t, mustAdmin(t, old), "si_alice_bob"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("restarted node: got %v, want %v", got, want)
	}
	digest := waitSameDigest(t, procs)

	// Stop all three and start them again: everything is there, once, same seqs.
	for _, p := range procs {
		p.Signal(syscall.SIGINT)
	}
	for _, p := range procs {
		p.Start()
	}
	for _, p := range procs {
		p.WaitReady()
	}
	for _, p := range procs {
		if got := pullTexts(t, mustAdmin(t, p), "si_alice_bob"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("after full restart %s: got %v, want %v", p.ID, got, want)
		}
	}
	if after := waitSameDigest(t, procs); after != digest {
		t.Fatalf("state digest changed across a full restart: %s -> %s (a command applied twice?)", digest, after)
	}
}

func TestInternalRoutesNeedTheClusterKey(t *testing.T) {
	procs := startCluster(t, 1)
	r, err := procs[0].Client().Post("internal/propose", []byte{9, 0})
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != 403 {
		t.Fatalf("got HTTP %d, want 403 for an internal call without the cluster key", r.HTTPStatus)
	}
}

func TestBackupRestoresIntoANewNode(t *testing.T) {
	procs := startCluster(t, 1)
	c := procs[0].Client()
	admin := mustAdmin(t, procs[0])
	mustRegister(t, c, "alice")
	mustRegister(t, c, "bob")
	sendText(t, admin, "b1", "alice", "bob", "before backup")
	_, digest := digestOf(t, procs[0])

	r, err := admin.Get("cluster/backup")
	if err != nil || r.HTTPStatus != 200 || len(r.Raw) == 0 {
		t.Fatalf("backup: %v %v", err, r)
	}
	sendText(t, admin, "b2", "alice", "bob", "after backup")

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(file, r.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// A download that stopped halfway is refused, and leaves nothing to start from.
	cut := filepath.Join(dir, "cut.db")
	if err := os.WriteFile(cut, r.Raw[:len(r.Raw)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	cutDir := filepath.Join(dir, "from-cut")
	if out, err := execOut(mustBinary(t), "restore", "-data-dir", cutDir, cut); err == nil || !strings.Contains(string(out), "cut short") {
		t.Fatalf("imnode restore of half a backup: %v\n%s\nwant it refused as cut short", err, out)
	}
	if _, err := os.Stat(filepath.Join(cutDir, "fsm.db")); !os.IsNotExist(err) {
		t.Fatalf("imnode restore of half a backup left an fsm.db (%v)", err)
	}

	dataDir := filepath.Join(dir, "restored")
	out, err := execOut(mustBinary(t), "restore", "-data-dir", dataDir, file)
	if err != nil {
		t.Fatalf("imnode restore: %v\n%s", err, out)
	}
	p := newProc(t, "restored", dataDir)
	p.Start("-bootstrap-expect", "1")
	p.WaitReady()
	if _, got := digestOf(t, p); got != digest {
		t.Fatalf("restored digest %s, want the backup point's %s", got, digest)
	}
	radmin := mustAdmin(t, p)
	if got := pullTexts(t, radmin, "si_alice_bob"); strings.Join(got, ",") != "before backup" {
		t.Fatalf("restored node: got %v, want [before backup]", got)
	}
	// The restored cluster takes new writes on top of the backup.
	sendText(t, radmin, "b3", "bob", "alice", "on the restored node")
	if got := pullTexts(t, radmin, "si_alice_bob"); len(got) != 2 {
		t.Fatalf("restored node after a new write: got %v", got)
	}

	// imnode check reads a stopped node's files page by page; a running node's it leaves.
	if out, err := execOut(mustBinary(t), "check", "-data-dir", dataDir); err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("imnode check of a running node's data dir: %v\n%s\nwant it refused as in use", err, out)
	}
	p.Signal(syscall.SIGINT)
	out, err = execOut(mustBinary(t), "check", "-data-dir", dataDir)
	if err != nil || strings.Count(string(out), ": whole") != 2 {
		t.Fatalf("imnode check of the stopped node: %v\n%s\nwant fsm.db and raft.db whole", err, out)
	}
	if err := os.Truncate(filepath.Join(dataDir, "fsm.db"), 3*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	if out, err := execOut(mustBinary(t), "check", "-data-dir", dataDir); err == nil || !strings.Contains(string(out), "fsm.db is damaged") {
		t.Fatalf("imnode check of an fsm.db cut short: %v\n%s\nwant fsm.db damaged", err, out)
	}
}

func TestSigtermLeaderLeavesTheConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	mustRegister(t, procs[0].Client(), "alice")
	old := leaderOf(t, procs)
	old.Signal(syscall.SIGTERM)
	var rest []*proc
	for _, p := range procs {
		if p != old {
			rest = append(rest, p)
		}
	}
	nl := leaderOf(t, rest)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := mustOKGet(t, mustAdmin(t, nl), "cluster/status")
		var st struct {
			Members []struct {
				NodeID string `json:"nodeID"`
				Role   string `json:"role"`
			} `json:"members"`
		}
		_ = r.DecodeData(&st)
		removed := true
		for _, m := range st.Members {
			if m.NodeID == old.ID && m.Role != "none" {
				removed = false
			}
		}
		if removed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still in the configuration 15 s after SIGTERM: %s", old.ID, r.Raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Two voters remain and still commit writes.
	mustRegister(t, rest[0].Client(), "bob")
}
