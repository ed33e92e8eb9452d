#!/usr/bin/env bash
# Makes the hotline's prompt set: 8 kHz mono 16-bit PCM WAV, Mandarin (zh)
# and English (en). Needs espeak-ng and sox (Debian: apt-get install -y
# espeak-ng sox). The generated files are committed, so running the hotline
# needs neither tool.
set -euo pipefail
cd "$(dirname "$0")"

say() { # name lang voice text
    local name=$1 lang=$2 voice=$3 text=$4 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s 150 -w "$tmp" "$text"
    # -D: no dither, so the file is the same on every run.
    sox -D "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "${name}_${lang}.wav" gain -n -3 rate -v 8000
    rm -f "$tmp"
    echo "${name}_${lang}.wav"
}

frag() { # name lang voice text: a fragment, silence trimmed so fragments join
    local name=$1 lang=$2 voice=$3 text=$4 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s 160 -w "$tmp" "$text"
    sox -D "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "${name}_${lang}.wav" gain -n -3 rate -v 8000 \
        silence 1 0.01 1% reverse silence 1 0.01 1% reverse pad 0 0.05
    rm -f "$tmp"
}

say welcome en en-us "Welcome to the property service hotline. Please enter your digits, then press the hash key."
say welcome zh cmn   "欢迎致电物业服务热线。请输入号码，然后按井号键。"
say goodbye en en-us "Thank you for calling. Goodbye."
say goodbye zh cmn   "感谢您的来电，再见。"
say return_visit en en-us "This is the property service centre, calling about the repair you reported. If it is fixed, press 1. If it is not, press 2."
say return_visit zh cmn   "您好，这里是物业服务中心，回访您报修的问题。如果已经修好，请按1；如果没有修好，请按2。"
say survey en en-us "Please rate our service from 1 to 5, where 5 is very satisfied."
say survey zh cmn   "请为我们的服务打分，1到5分，5分表示非常满意。"

# ---- the voice menu (config/ivr.toml) ----------------------------------------
say greeting_garden en en-us "Welcome to Garden Court property service."
say greeting_garden zh cmn   "欢迎致电花园小区物业服务中心。"
say greeting_lakeside en en-us "Welcome to Lakeside Residence property service."
say greeting_lakeside zh cmn   "欢迎致电湖畔居物业服务中心。"
say choose_language en en-us "For Mandarin, press 1. For English, press 2."
say choose_language zh cmn   "普通话请按1。For English, press 2."
say main_menu en en-us "For self-service, press 1. To report a repair, press 2. For complaints and suggestions, press 3. For gifts with your points, press 4. For an agent, press 0."
say main_menu zh cmn   "自助查询请按1，报修请按2，投诉建议请按3，积分兑换礼品请按4，人工服务请按0。"
say self_service_menu en en-us "For your fee balance, press 1. For your latest repair, press 2. To enter a ticket number, press 3. For the main menu, press 9."
say self_service_menu zh cmn   "查询物业费余额请按1，查询最近的报修请按2，输入工单号查询请按3，返回主菜单请按9。"
say balance_is en en-us "Your fee balance is"
say balance_is zh cmn   "您的物业费余额为"
say your_ticket en en-us "Your latest repair is"
say your_ticket zh cmn   "您最近的报修是"
say opened_on en en-us "reported on"
say opened_on zh cmn   "报修日期"
say status_is en en-us "Its status is"
say status_is zh cmn   "当前状态"
say status_open en en-us "registered, waiting to be sent to a team."
say status_open zh cmn   "已受理，待派工。"
say status_dispatched en en-us "with the repair team."
say status_dispatched zh cmn   "已派工，维修人员处理中。"
say status_resolved en en-us "done, waiting for your confirmation."
say status_resolved zh cmn   "已处理，等待您确认。"
say status_closed en en-us "closed."
say status_closed zh cmn   "已完成。"
say no_ticket_found en en-us "No ticket was found."
say no_ticket_found zh cmn   "没有找到工单。"
say enter_ticket_number en en-us "Please enter the ticket number, then press hash."
say enter_ticket_number zh cmn   "请输入工单号，以井号键结束。"
say enter_building en en-us "Please enter your building number, then press hash."
say enter_building zh cmn   "请输入您的楼号，以井号键结束。"
say enter_unit en en-us "Please enter your unit number, then press hash."
say enter_unit zh cmn   "请输入您的房号，以井号键结束。"
say enter_pin en en-us "Please enter your service PIN, then press hash."
say enter_pin zh cmn   "请输入您的服务密码，以井号键结束。"
say unit_not_found en en-us "We could not confirm that unit and PIN. An agent will help you."
say unit_not_found zh cmn   "无法核实该房号和密码，将为您转接人工服务。"
say repair_menu en en-us "Water, press 1. Electricity, press 2. Lift, press 3. Doors and locks, press 4. Anything else, press 5. For an emergency such as a leak or gas, press 9."
say repair_menu zh cmn   "水路请按1，电路请按2，电梯请按3，门锁请按4，其他请按5，漏水燃气等紧急情况请按9。"
say ticket_opened en en-us "Your repair is registered as"
say ticket_opened zh cmn   "您的报修已登记，"
say repair_promise en en-us "We will contact you within 30 minutes."
say repair_promise zh cmn   "我们将在30分钟内与您联系。"
say emergency_hold en en-us "This is treated as an emergency. Please stay on the line."
say emergency_hold zh cmn   "已按紧急情况处理，请不要挂机。"
say record_complaint en en-us "Please leave your message now, and press hash when you are done."
say record_complaint zh cmn   "请现在留言，结束请按井号键。"
say message_recorded en en-us "Thank you. Your message is recorded as"
say message_recorded zh cmn   "感谢您的留言，"
say offer_agent en en-us "To speak to an agent, press 1. To finish, press 2."
say offer_agent zh cmn   "转人工服务请按1，结束请按2。"
say points_balance en en-us "You have"
say points_balance zh cmn   "您现有"
say catalogue_intro en en-us "You can choose one of these gifts. You have"
say catalogue_intro zh cmn   "您可以兑换以下礼品，您现有"
say press en en-us "press"
say press zh cmn   "请按"
say gift_G1 en en-us "Umbrella,"
say gift_G1 zh cmn   "雨伞，"
say gift_G2 en en-us "Car wash voucher,"
say gift_G2 zh cmn   "洗车券，"
say gift_G3 en en-us "Rice cooker,"
say gift_G3 zh cmn   "电饭煲，"
say gift_G4 en en-us "One month of parking,"
say gift_G4 zh cmn   "一个月停车，"
say confirm_gift en en-us "To confirm, press 1. To choose again, press 2. For the main menu, press 9."
say confirm_gift zh cmn   "确认兑换请按1，重新选择请按2，返回主菜单请按9。"
say not_enough_points en en-us "There is no gift for the points you have yet."
say not_enough_points zh cmn   "您的积分暂时不足以兑换礼品。"
say gift_redeemed en en-us "Your gift is redeemed. You have left"
say gift_redeemed zh cmn   "兑换成功，剩余"
say anything_else en en-us "For the main menu, press 1. To finish, press 2."
say anything_else zh cmn   "返回主菜单请按1，结束请按2。"
say hold en en-us "Please hold, we are connecting you to an agent."
say hold zh cmn   "正在为您转接人工服务，请稍候。"
say recording_notice en en-us "This call may be recorded."
say recording_notice zh cmn   "通话可能录音。"
say closed_now en en-us "Our service centre is closed now. For an emergency, such as a water leak, a smell of gas or someone trapped in a lift, press 9. To leave a message for the morning, press 1. To be called back when we open, press 2."
say closed_now zh cmn   "服务中心现在已下班。如遇漏水、燃气泄漏、有人被困电梯等紧急情况，请按9；如需留言，我们将在上班后处理，请按1；如需上班后回电，请按2。"
say closed_holiday en en-us "Our service centre is closed for the public holiday. For an emergency, such as a water leak, a smell of gas or someone trapped in a lift, press 9. To leave a message, press 1. To be called back when we open, press 2."
say closed_holiday zh cmn   "节假日期间服务中心休息。如遇漏水、燃气泄漏、有人被困电梯等紧急情况，请按9；如需留言，请按1；如需上班后回电，请按2。"
say no_agents en en-us "Nobody can take your call right now."
say no_agents zh cmn   "目前没有坐席可以接听您的电话。"
say agents_busy en en-us "All our agents are busy. We will call you back. Goodbye."
say agents_busy zh cmn   "坐席繁忙，我们会尽快给您回电，再见。"
say invalid en en-us "Sorry, that key is not valid."
say invalid zh cmn   "对不起，您的按键无效。"
say no_input en en-us "Sorry, we did not hear a key."
say no_input zh cmn   "对不起，没有收到您的按键。"

# ---- fragments for numbers, money, dates (src/ivr/say.rs) ---------------------
en_words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen)
for n in $(seq 0 19); do frag "num_$n" en en-us "${en_words[$n]}"; done
tens=(x x twenty thirty forty fifty sixty seventy eighty ninety)
for n in $(seq 2 9); do frag "num_$((n * 10))" en en-us "${tens[$n]}"; done
months=(x January February March April May June July August September October November December)
for m in $(seq 1 12); do frag "month_$m" en en-us "${months[$m]}"; done
for w in hundred thousand million billion yuan cents and minus; do frag "$w" en en-us "$w"; done
frag points_word en en-us "points"
frag ticket_word en en-us "ticket"
zh_digits=(零 一 二 三 四 五 六 七 八 九 十)
for n in $(seq 0 10); do frag "num_$n" zh cmn "${zh_digits[$n]}"; done
frag num_100 zh cmn "百"
frag num_1000 zh cmn "千"
frag num_10000 zh cmn "万"
frag num_100000000 zh cmn "亿"
frag liang zh cmn "两"
frag yuan zh cmn "元"
frag jiao zh cmn "角"
frag fen zh cmn "分"
frag minus zh cmn "负"
frag month zh cmn "月"
frag day zh cmn "日"
frag points_word zh cmn "积分"
frag ticket_word zh cmn "工单号"

# ---- agents' feature codes (*1 log in, *2 log out, *3 pause, *4 ready) ------
say agent_logged_in en en-us "You are logged in."
say agent_logged_in zh cmn   "您已签入。"
say agent_logged_out en en-us "You are logged out."
say agent_logged_out zh cmn   "您已签出。"
say agent_paused en en-us "You are paused."
say agent_paused zh cmn   "您已暂停接听。"
say agent_ready en en-us "You are ready for calls."
say agent_ready zh cmn   "您已就绪。"

# ---- while waiting for an agent (place in line, estimated wait) -----------
say position_is en en-us "You are number"
say position_is zh cmn   "您目前排在第"
say in_line en en-us "in line."
say in_line zh cmn   "位。"
say wait_is en en-us "The estimated wait is"
say wait_is zh cmn   "预计等待"
say minutes_word en en-us "minutes."
say minutes_word zh cmn   "分钟。"

# ---- tones -----------------------------------------------------------------
# Ringback while an agent's phone rings: 450 Hz, 1 s on, 4 s off (China).
for lang in en zh; do
    sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "ringback_${lang}.wav" synth 1 sine 450 gain -10 pad 0 4
    echo "ringback_${lang}.wav"
done

# ---- the emergency on-call chain (tickets::oncall) ---------------------------
say oncall_emergency en en-us "This is the property service hotline, with an emergency for you."
say oncall_emergency zh cmn   "您好，这里是物业服务热线，有一个紧急工单需要您处理。"
frag building_word en en-us "building"
frag building_word zh cmn "楼栋"
frag unit_word en en-us "unit"
frag unit_word zh cmn "房号"
frag callback_word en en-us "the owner's number is"
frag callback_word zh cmn "业主电话"
say oncall_press en en-us "To accept and go now, press 1. To pass it to the next person on duty, press 2."
say oncall_press zh cmn   "接单并立即前往请按1，转给下一位值班人员请按2。"
say oncall_accepted en en-us "Thank you. The ticket is yours, and the owner is promised you are on your way."
say oncall_accepted zh cmn   "谢谢，工单已派给您，我们已告知业主您正在赶来。"
say oncall_passed en en-us "Thank you. We will call the next person on duty."
say oncall_passed zh cmn   "谢谢，我们将联系下一位值班人员。"
frag category_water en en-us "a water leak"
frag category_water zh cmn "漏水"
frag category_electricity en en-us "an electrical fault"
frag category_electricity zh cmn "电路故障"
frag category_lift en en-us "a lift fault"
frag category_lift zh cmn "电梯故障"
frag category_doors_and_locks en en-us "doors and locks"
frag category_doors_and_locks zh cmn "门锁"
frag category_repair en en-us "a repair"
frag category_repair zh cmn "维修"
frag category_cleaning en en-us "cleaning"
frag category_cleaning zh cmn "保洁"
frag category_security en en-us "security"
frag category_security zh cmn "安保"
frag category_noise en en-us "noise"
frag category_noise zh cmn "噪音"
frag category_parking en en-us "parking"
frag category_parking zh cmn "停车"
frag category_garden en en-us "the gardens"
frag category_garden zh cmn "绿化"
frag category_complaint en en-us "a complaint"
frag category_complaint zh cmn "投诉"
frag category_suggestion en en-us "a suggestion"
frag category_suggestion zh cmn "建议"
frag category_gifts en en-us "gifts"
frag category_gifts zh cmn "礼品"
frag category_message en en-us "a message"
frag category_message zh cmn "留言"

# ---- callbacks that keep the caller's place (call::callback) -------------------
say callback_offer en en-us "To be called back instead of waiting, press 1. You keep your place in line."
say callback_offer zh cmn   "如不想等待，可按1预约回电，您的排队位置将为您保留。"
say callback_number_is en en-us "We will call you back on"
say callback_number_is zh cmn   "我们将回电至"
say callback_press en en-us "To confirm, press 1. To give another number, type it and press the hash key. To keep waiting, press star."
say callback_press zh cmn   "确认请按1；如需其他号码，请输入号码并以井号键结束；继续等待请按星号键。"
say callback_enter_number en en-us "Please type the number to call you back on, then press the hash key. To keep waiting, press star."
say callback_enter_number zh cmn   "请输入回电号码，并以井号键结束；继续等待请按星号键。"
say callback_confirmed en en-us "Thank you. You keep your place, and we will call you back when an agent is free. Goodbye."
say callback_confirmed zh cmn   "谢谢，已为您保留排队位置，坐席空闲时我们将给您回电。再见。"
say callback_number_refused en en-us "Sorry, we cannot call that number back. Please keep waiting, or press 1 to try another number."
say callback_number_refused zh cmn   "抱歉，无法回电至该号码。请继续等待，或按1更换号码。"
say callback_morning en en-us "Thank you. We will call you back on the number you called from when the centre opens. Your request is ticket"
say callback_morning zh cmn   "谢谢，上班后我们将按您的来电号码给您回电。您的工单号是"
say callback_hello en en-us "Hello, this is the property service hotline returning your call. Connecting you to an agent now."
say callback_hello zh cmn   "您好，这里是物业服务热线，为您回电，正在为您接通坐席。"
