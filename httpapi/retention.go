package httpapi

import "github.com/imnode/imnode/fsm"

// Message retention as the read routes show it (see fsm/retention.go): a conversation's
// minSeq is the lowest seq still stored; seqs below it were removed by retention and are
// gone for good, which a client tells from a gap (there never is one) by that number.

// pullResp is the answer of msg/pull_msg_by_seq: the messages under data, as the route
// always answered, and the conversation's minSeq beside them.
type pullResp struct {
	Data []fsm.MessageView `json:"data"`
	// MinSeq: the requested seqs below it were removed by retention, not lost (0: none
	// ever was). It is read after the messages, so every seq below it that the answer
	// lacks is gone.
	MinSeq uint64 `json:"minSeq"`
}

func (s *Server) withMinSeq(conv string, msgs []fsm.MessageView) (any, error) {
	minSeq, err := s.b.FSM().MinSeq(conv)
	if err != nil {
		return nil, err
	}
	return pullResp{Data: msgs, MinSeq: minSeq}, nil
}
