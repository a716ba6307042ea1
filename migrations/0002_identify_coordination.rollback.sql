DROP TABLE identify_budget;
DROP TABLE identify_turns;
