package httpapi

import "github.com/valyala/fasthttp"

// buildRoutes is the route table: every path the API serves, its method and who may call
// it. /internal/* and /debug/pprof/* are prefixes and live in their own fields.
func (s *Server) buildRoutes() map[string]*route {
	const post, get = fasthttp.MethodPost, fasthttp.MethodGet
	metricsAccess := accessOpen
	if s.cfg.MetricsRequireToken {
		metricsAccess = accessAdmin
	}
	table := []*route{
		// The spec's routes.
		{name: "auth/user_register", method: post, access: accessSecret, h: s.userRegister},
		{name: "auth/user_token", method: post, access: accessSecret, h: s.userToken},
		{name: "group/create_group", method: post, access: accessAdmin, h: s.createGroup},
		{name: "group/invite_user_to_group", method: post, access: accessAdmin, h: s.inviteToGroup},
		{name: "group/kick_group", method: post, access: accessAdmin, h: s.kickGroup},
		{name: "friend/import_friend", method: post, access: accessAdmin, h: s.importFriend},
		{name: "friend/add_blacklist", method: post, access: accessAdmin, h: s.addBlacklist},
		{name: "user/update_user_info", method: post, access: accessAdmin, h: s.updateUserInfo},
		{name: "manager/delete_user", method: post, access: accessAdmin, h: s.deleteUser},
		{name: "user/get_user_info", method: post, access: accessUser, h: s.getUserInfo},
		{name: "manager/get_all_users_uid", method: post, access: accessAdmin, h: s.getAllUsersUID},
		{name: "manager/send_msg", method: post, access: accessAdmin, h: s.sendMsg},

		// Client delivery and the read routes of DESIGN.md §3.
		{name: "msg/send_msg", method: post, access: accessUser, h: s.sendMsg},
		{name: "group/get_group_info", method: post, access: accessUser, h: s.getGroupInfo},
		{name: "group/get_group_member_list", method: post, access: accessUser, h: s.getGroupMemberList},
		{name: "group/get_joined_group_list", method: post, access: accessUser, h: s.getJoinedGroupList},
		{name: "friend/get_friend_list", method: post, access: accessUser, h: s.getFriendList},
		{name: "friend/get_blacklist", method: post, access: accessUser, h: s.getBlacklist},
		{name: "msg/newest_seq", method: post, access: accessUser, h: s.newestSeq},
		{name: "msg/pull_msg_by_seq", method: post, access: accessUser, h: s.pullMsgBySeq},

		// Relations and group management (issue 11): a user token acts for itself, the FSM
		// checks group roles.
		{name: "friend/delete_friend", method: post, access: accessUser, h: s.deleteFriend},
		{name: "friend/remove_blacklist", method: post, access: accessUser, h: s.removeBlacklist},
		{name: "friend/is_friend", method: post, access: accessUser, h: s.isFriend},
		{name: "friend/get_friends_info", method: post, access: accessUser, h: s.getFriendsInfo},
		{name: "group/set_group_info", method: post, access: accessUser, h: s.setGroupInfo},
		{name: "group/quit_group", method: post, access: accessUser, h: s.quitGroup},
		{name: "group/transfer_group", method: post, access: accessUser, h: s.transferGroup},
		{name: "group/dismiss_group", method: post, access: accessUser, h: s.dismissGroup},
		{name: "group/get_groups_info", method: post, access: accessUser, h: s.getGroupsInfo},
		{name: "group/set_group_member_info", method: post, access: accessUser, h: s.setGroupMemberInfo},
		{name: "group/mute_group_member", method: post, access: accessUser, h: s.muteGroupMember},
		{name: "group/cancel_mute_group_member", method: post, access: accessUser, h: s.cancelMuteGroupMember},
		{name: "manager/account_check", method: post, access: accessAdmin, h: s.accountCheck},

		// Revoke, read state and conversations (issue 11): a user token acts for itself,
		// the FSM checks who may revoke.
		{name: "msg/revoke_msg", method: post, access: accessUser, h: s.revokeMsg},
		{name: "msg/delete_msgs", method: post, access: accessUser, h: s.deleteMsgs},
		{name: "msg/mark_as_read", method: post, access: accessUser, h: s.markAsRead},
		{name: "conversation/get_all_conversations", method: post, access: accessUser, h: s.getAllConversations},
		{name: "conversation/set_conversation", method: post, access: accessUser, h: s.setConversation},

		// Presence (issue 11): live, asked of every node; any token may ask about anyone.
		{name: "user/get_users_online_status", method: post, access: accessUser, h: s.getUsersOnlineStatus},

		// Operations.
		{name: "healthz", method: get, access: accessOpen, h: s.healthz},
		{name: "readyz", method: get, access: accessOpen, h: s.readyz},
		{name: "metrics", method: get, access: metricsAccess, raw: true, h: s.metrics},
		{name: "cluster/status", method: get, access: accessAdmin, h: s.clusterStatus},
		{name: "cluster/remove_node", method: post, access: accessAdmin, h: s.removeNode},
		{name: "cluster/backup", method: get, access: accessAdmin, raw: true, h: s.backup},
		{name: "cluster/digest", method: get, access: accessAdmin, h: s.digest},
	}
	m := make(map[string]*route, len(table))
	for _, rt := range table {
		m["/"+rt.name] = rt
	}
	// method "" takes any method: node-to-node calls choose their own.
	s.internalRoute = &route{name: "internal", access: accessCluster, raw: true, h: s.internal}
	s.pprofRoute = &route{name: "debug/pprof", method: get, access: accessAdmin, raw: true, h: s.pprof}
	return m
}
